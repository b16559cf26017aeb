"""Expression indexes for custom fields on PostgreSQL, so segments stay fast unaided.

A segment condition on a custom field compiles to a typed expression over the JSON
attributes (``contacts.segments.AttributeNumber`` and friends). PostgreSQL can use an
index on exactly that expression, so one is created for each number, date and text
field when it is defined, and dropped with it; nobody has to create one by hand. The
index SQL is produced by compiling the very expression segments use, so the two cannot
drift apart. SQLite has no such need at the sizes it serves and is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connection
from django.db.models.functions import Lower

from contacts import segments
from contacts.models import Contact, CustomField

log = logging.getLogger(__name__)

INDEXED_TYPES = {
    CustomField.Type.NUMBER: segments.AttributeNumber,
    CustomField.Type.DATE: segments.AttributeDate,
    CustomField.Type.TEXT: segments.AttributeText,
    CustomField.Type.CHOICE: segments.AttributeText,
}


def custom_field_index_name(field_id: int) -> str:
    return f"contacts_cf_{field_id}_idx"


def custom_field_index_sql(field: CustomField) -> str | None:
    """The CREATE INDEX statement for a field (without CONCURRENTLY), or None."""
    expression_class = INDEXED_TYPES.get(CustomField.Type(field.type))
    if expression_class is None:
        return None
    expression = expression_class(field.key)
    # Text conditions compare lower-cased values (segments._text_q).
    if field.type == CustomField.Type.TEXT:
        expression = Lower(expression)
    query = Contact.objects.all().query
    compiler = query.get_compiler(connection=connection)
    sql, params = compiler.compile(expression.resolve_expression(query))
    table = connection.ops.quote_name(Contact._meta.db_table)
    # The expression names the column with its table; an index expression names it bare.
    sql = sql.replace(f"{table}.", "")
    body = connection.ops.compose_sql(sql, params)
    return f"CREATE INDEX IF NOT EXISTS {custom_field_index_name(field.pk)} ON {table} (({body}))"


def custom_field_index_sync(field_id: int) -> None:
    """Make the field's index match its type: drop the old one, create the new one.

    Runs CONCURRENTLY (no write lock on the contacts table) when called outside a
    transaction, as the Celery task does; plainly inside one. Does nothing off PostgreSQL.
    Idempotent; a missing field only has its index dropped.
    """
    if connection.vendor != "postgresql":
        return
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY "
    name = custom_field_index_name(field_id)
    field = CustomField.objects.filter(pk=field_id).first()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")
        sql = custom_field_index_sql(field) if field is not None else None
        if sql is not None:
            cursor.execute(sql.replace("CREATE INDEX ", f"CREATE INDEX {concurrently}", 1))
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Contact._meta.db_table)}")


def _index_is_valid(cursor: Any, name: str) -> bool:
    cursor.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
        [name],
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def custom_field_index_ensure(field: CustomField) -> bool:
    """Give the field its index unless it has a valid one; True when one was built.

    Unlike ``custom_field_index_sync`` this leaves a valid index alone, so it is cheap to
    call for every field. An invalid index (a CREATE INDEX CONCURRENTLY that was
    interrupted) is dropped and built again.
    """
    if connection.vendor != "postgresql":
        return False
    sql = custom_field_index_sql(field)
    if sql is None:
        return False
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY "
    name = custom_field_index_name(field.pk)
    with connection.cursor() as cursor:
        if _index_is_valid(cursor, name):
            return False
        cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")
        cursor.execute(sql.replace("CREATE INDEX ", f"CREATE INDEX {concurrently}", 1))
    return True


# Held, at session level, by whoever has set the custom-field indexes aside or is
# rebuilding them: one import at a time, and never the repair under a running import.
# (An arbitrary constant; advisory lock keys are the application's to choose.)
INDEXES_ASIDE_LOCK = 0x4D43_0001
# Sort memory for rebuilding them: PostgreSQL's default of 64 MB spills a million keys
# to disk; 256 MB took the three builds from ~4.1 s to ~2.9 s. Taken only while building.
BUILD_MEMORY = "256MB"


def _indexed_fields() -> list[CustomField]:
    return [
        field
        for field in CustomField.objects.order_by("pk")
        if CustomField.Type(field.type) in INDEXED_TYPES
    ]


def custom_field_indexes_repair() -> int:
    """Build every missing or invalid custom-field index; how many were built.

    An import that set the indexes aside builds them again when it ends, even when it
    fails; this is for a worker killed in between (its session, and so the lock, died
    with it). Does nothing while an import holds them aside.
    """
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [INDEXES_ASIDE_LOCK])
        if not cursor.fetchone()[0]:
            return 0
        try:
            built = _build_missing()
            if built:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(Contact._meta.db_table)}")
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [INDEXES_ASIDE_LOCK])
    return built


def _build_missing() -> int:
    """Build the index of every field, as the fields are now, that lacks a valid one."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        try:
            return sum(custom_field_index_ensure(field) for field in _indexed_fields())
        finally:
            cursor.execute("RESET maintenance_work_mem")


@contextmanager
def custom_field_indexes_aside(new_rows: int) -> Iterator[bool]:
    """Drop the custom-field indexes for a big import and build them again after it.

    Writing a million rows through three expression indexes costs PostgreSQL about four
    times what building the three afresh from the finished table does (measured: ~16 s
    against ~4 s), because every row is a random insert into each index. So when an
    import brings at least ``MAILCENTER_IMPORT_INDEXES_ASIDE_MIN_ROWS`` rows and more than
    twice as many as the table already holds (a file imported again, all of it known,
    would pay for a rebuild and gain nothing), the indexes are dropped before it and
    rebuilt when it ends, failed or not. Both use CONCURRENTLY outside a transaction, so nobody
    else's reads or writes wait (though each waits for transactions already writing to
    the contacts to end); meanwhile a segment on those fields is counted by scanning the
    table, slower but right. One import at a time does this (an advisory lock); the
    others keep the indexes as they are. Yields whether the indexes were set aside.
    """
    from contacts import conf

    if connection.vendor != "postgresql" or new_rows < conf.import_indexes_aside_min_rows():
        yield False
        return
    table = connection.ops.quote_name(Contact._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass", [table]
        )
        if cursor.fetchone()[0] * 2 >= new_rows:
            yield False
            return
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [INDEXES_ASIDE_LOCK])
        if not cursor.fetchone()[0]:
            yield False
            return
    try:
        concurrently = "" if connection.in_atomic_block else "CONCURRENTLY "
        fields = _indexed_fields()
        with connection.cursor() as cursor:
            for field in fields:
                name = custom_field_index_name(field.pk)
                cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")
        log.info("Custom-field indexes set aside for an import of %s rows", new_rows)
        yield True
    finally:
        # The import is over (its rows committed or not): a failure here must not make it
        # look failed, so it is logged and the repair task builds what is missing.
        try:
            # The fields as they are now: one may have been added or retyped meanwhile.
            _build_missing()
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {table}")
        except DatabaseError:
            log.exception("Custom-field indexes not built again after an import; repair will")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [INDEXES_ASIDE_LOCK])
        except DatabaseError:  # the connection is gone, and its lock with it
            log.exception("Could not release the custom-field index lock")

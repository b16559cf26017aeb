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

from django.db import connection
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

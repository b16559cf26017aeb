"""The PostgreSQL bulk path of the importer: COPY into staging, then a set-based merge.

The file is streamed once more after ``inspect_csv``: each row is validated in Python
(address, typed custom fields) and written with COPY into an unlogged staging table, the
first row of each address into one table and its later duplicates into another; rows
refused here are counted as they go. Then one transaction merges the staging into the
contacts and the list with a handful of statements, so the list either gets the whole
file or, after a crash, nothing at all (the staging tables are dropped whatever happens;
running the import again is safe).

The outcome is the batch path's (``imports._import_batch``), rule for rule: later
non-empty values of a duplicated address win, existing contacts who left are skipped or,
under LeftPolicy.UPDATE, get their details updated (never their status or subscriptions),
suppressed addresses are refused, and only real changes count as updates.
"""

# The SQL below names staging tables built from the import's integer id, never from input;
# values go in as parameters or through COPY.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils.translation import gettext as _

from contacts import importing
from contacts.models import ContactImport, CustomField, MailingList, Suppression
from contacts.services.contacts import NAME_MAX_LENGTH, normalize_email

log = logging.getLogger(__name__)

PROGRESS_EVERY = 50_000
STAGE_COLUMNS = "(row_no, email, email_lower, first_name, last_name, attributes, dup)"


def _stage_name(import_id: int) -> str:
    return f"contacts_import_stage_{import_id}"


def _drop(cursor: Any, *tables: str) -> None:
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def contact_import_copy(
    contact_import: ContactImport,
    tally: Any,
    open_file: importing.OpenFile,
    info: importing.CsvInfo,
    fields: dict[str, CustomField],
    mode: str = ContactImport.Mode.ADD_UPDATE,
    left_policy: str = ContactImport.LeftPolicy.SKIP,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Import a validated file (see ``inspect_csv``) through COPY and a set-based merge.

    Updates ``tally`` (created / updated / skipped / refused) and the import's progress
    while staging. A cancellation is honoured between COPY chunks and before the merge, so
    a cancelled COPY import writes nothing. Raises whatever the database raises; the
    caller records the failure.
    """
    from contacts.services.imports import attributes_typer, contact_import_check_cancelled

    stage = _stage_name(contact_import.pk)
    typer = attributes_typer(fields)
    seen: set[str] = set()
    with connection.cursor() as cursor:
        _drop(cursor, stage)
        cursor.execute(
            f"CREATE UNLOGGED TABLE {stage} (row_no integer, email text, email_lower text, "
            "first_name text, last_name text, attributes jsonb, dup boolean)"
        )
        try:
            rows = importing.read_contacts(open_file, info)
            # COPY in chunks: the connection can run nothing else while a COPY is open,
            # and between chunks the progress bar gets its update.
            more = True
            while more:
                contact_import_check_cancelled(contact_import.pk)
                more = _copy_chunk(cursor, stage, rows, tally, typer, seen)
                _progress(contact_import.pk, tally)
                if on_progress is not None:
                    on_progress(tally.rows_done, info.rows_total)
            seen.clear()
            _progress(contact_import.pk, tally)
            # Last chance to stop: after this the merge runs as one transaction.
            contact_import_check_cancelled(contact_import.pk)
            with transaction.atomic():
                _merge(cursor, contact_import.mailing_list, stage, tally, mode, left_policy)
        finally:
            _drop(cursor, stage)


def _copy_chunk(
    cursor: Any,
    stage: str,
    rows: Any,
    tally: Any,
    typer: Any,
    seen: set[str],
) -> bool:
    """COPY up to PROGRESS_EVERY rows into the staging table; False once the file ends."""
    with cursor.copy(f"COPY {stage} {STAGE_COLUMNS} FROM STDIN") as copy:
        for count, row in enumerate(rows, start=1):
            tally.rows_done += 1
            if not row.email:
                tally.refuse(row.row, "", _("No email address."))
            else:
                try:
                    email = normalize_email(row.email)
                except ValidationError as exc:
                    tally.refuse(row.row, row.email, exc.messages[0])
                    email = ""
                if email:
                    attributes, reason = typer(row.attributes)
                    if reason is not None:
                        tally.refuse(row.row, email, reason)
                    else:
                        key = email.lower()
                        dup = key in seen
                        if dup:
                            tally.skipped += 1
                        else:
                            seen.add(key)
                        copy.write_row(
                            (
                                row.row,
                                email,
                                key,
                                row.first_name[:NAME_MAX_LENGTH],
                                row.last_name[:NAME_MAX_LENGTH],
                                json.dumps(attributes, ensure_ascii=False),
                                dup,
                            )
                        )
            if count >= PROGRESS_EVERY:
                return True
    return False


def _progress(import_id: int, tally: Any) -> None:
    ContactImport.objects.filter(pk=import_id).update(
        rows_done=tally.rows_done, refused=tally.refused, skipped=tally.skipped
    )


def _merge(
    cursor: Any,
    mailing_list: MailingList,
    stage: str,
    tally: Any,
    mode: str = ContactImport.Mode.ADD_UPDATE,
    left_policy: str = ContactImport.LeftPolicy.SKIP,
) -> None:
    """Apply the staged rows to the contacts and the list (inside the caller's transaction).

    ``mode`` and ``left_policy`` as in ``imports._import_batch``: *add* updates no existing
    contact's data, *update* creates no contact; contacts who left are never subscribed,
    and their details are updated only under LeftPolicy.UPDATE.
    """
    from contacts.services.imports import left_before_reason, not_existing_reason

    cursor.execute(f"ANALYZE {stage}")
    # 1. Later rows of the same address: their non-empty names and their attributes win.
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {stage} WHERE dup)")
    if cursor.fetchone()[0]:
        dups = f"(SELECT * FROM {stage} WHERE dup)"
        cursor.execute(
            f"""
            UPDATE {stage} s SET
                first_name = coalesce(d.first_name, s.first_name),
                last_name = coalesce(d.last_name, s.last_name),
                attributes = s.attributes || coalesce(d.attributes, '{{}}'::jsonb)
            FROM (
                SELECT email_lower,
                    (array_agg(first_name ORDER BY row_no DESC)
                        FILTER (WHERE first_name <> ''))[1] AS first_name,
                    (array_agg(last_name ORDER BY row_no DESC)
                        FILTER (WHERE last_name <> ''))[1] AS last_name,
                    (SELECT jsonb_object_agg(e.key, e.value ORDER BY x.row_no)
                     FROM {dups} x, jsonb_each(x.attributes) e
                     WHERE x.email_lower = g.email_lower) AS attributes
                FROM {dups} g GROUP BY email_lower
            ) d
            WHERE s.email_lower = d.email_lower AND NOT s.dup
            """
        )
        cursor.execute(f"DELETE FROM {stage} WHERE dup")
    # 2. Suppressed addresses (the address, its domain, or an erased address's hash).
    kinds = set(Suppression.objects.values_list("kind", flat=True).distinct())
    conditions = []
    if Suppression.Kind.EMAIL in kinds:
        conditions.append("(x.kind = 'email' AND x.value = s.email_lower)")
    if Suppression.Kind.DOMAIN in kinds:
        conditions.append("(x.kind = 'domain' AND x.value = split_part(s.email_lower, '@', 2))")
    if Suppression.Kind.HASH in kinds:
        conditions.append(
            "(x.kind = 'hash' AND "
            "x.value = encode(sha256(convert_to(s.email_lower, 'UTF8')), 'hex'))"
        )
    for condition in conditions:
        cursor.execute(
            f"DELETE FROM {stage} s USING contacts_suppression x WHERE {condition} "
            "RETURNING s.row_no, s.email"
        )
        for row_no, email in sorted(cursor.fetchall()):
            tally.refuse(row_no, email, _("suppressed"))
    # 3. Existing contacts: who they are and whether they may be touched.
    cursor.execute(
        f"""
        CREATE TEMP TABLE {stage}_existing ON COMMIT DROP AS
        SELECT s.email_lower, c.id AS contact_id, c.status,
            CASE WHEN s.first_name <> '' THEN s.first_name ELSE c.first_name END AS first_name,
            CASE WHEN s.last_name <> '' THEN s.last_name ELSE c.last_name END AS last_name,
            c.attributes || s.attributes AS attributes,
            (c.first_name, c.last_name, c.attributes) IS DISTINCT FROM
                (CASE WHEN s.first_name <> '' THEN s.first_name ELSE c.first_name END,
                 CASE WHEN s.last_name <> '' THEN s.last_name ELSE c.last_name END,
                 c.attributes || s.attributes) AS changed
        FROM {stage} s JOIN contacts_contact c ON lower(c.email) = s.email_lower
        """
    )
    update_data = mode != ContactImport.Mode.ADD_ONLY
    update_left = update_data and left_policy == ContactImport.LeftPolicy.UPDATE
    cursor.execute(
        f"SELECT count(*) FILTER (WHERE status <> 'active'), count(*) FILTER (WHERE status = "
        f"'active') FROM {stage}_existing"
    )
    left, active = cursor.fetchone()
    update_only = mode == ContactImport.Mode.UPDATE_ONLY
    if left or update_only:
        # The rows listed with a reason, in file order like the batch path's, so the same
        # ones are kept when there are more than the report holds.
        cursor.execute(
            f"SELECT s.row_no, s.email, e.email_lower IS NULL, coalesce(e.changed, false) "
            f"FROM {stage} s LEFT JOIN {stage}_existing e ON e.email_lower = s.email_lower "
            "WHERE e.status <> 'active' OR (e.email_lower IS NULL AND %s) "
            "ORDER BY s.row_no LIMIT %s",
            [update_only, tally.refused_rows_kept],
        )
        for row_no, email, unknown, changed in cursor.fetchall():
            if unknown:
                tally.note_skipped(row_no, email, not_existing_reason())
                continue
            updated = update_left and changed
            reason = left_before_reason(left_policy, updated)
            tally.note_skipped(row_no, email, reason, updated=updated)
    # Contacts who left get at most their details updated: the subscription insert below
    # takes active contacts only, and no statement here writes a contact's status.
    cursor.execute(
        f"""
        WITH upd AS (
            UPDATE contacts_contact c SET first_name = e.first_name, last_name = e.last_name,
                attributes = e.attributes, updated_at = now()
            FROM {stage}_existing e
            WHERE c.id = e.contact_id AND e.changed AND %s AND (e.status = 'active' OR %s)
            RETURNING c.id, e.status = 'active' AS active
        ), sub AS (
            INSERT INTO contacts_subscription
                (contact_id, mailing_list_id, status, created_at, updated_at)
            SELECT contact_id, %s, 'subscribed', now(), now()
            FROM {stage}_existing WHERE status = 'active'
            ON CONFLICT (contact_id, mailing_list_id) DO NOTHING
            RETURNING contact_id
        )
        SELECT
            (SELECT count(*) FROM
                (SELECT id FROM upd WHERE active UNION SELECT contact_id FROM sub) touched),
            (SELECT count(*) FROM upd WHERE NOT active)
        """,
        [update_data, update_left, mailing_list.pk],
    )
    active_updated, left_updated = cursor.fetchone()
    tally.updated += active_updated + left_updated
    tally.skipped += active - active_updated + left - left_updated
    if update_only:
        cursor.execute(
            f"SELECT count(*) FROM {stage} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {stage}_existing e WHERE e.email_lower = s.email_lower)"
        )
        tally.skipped += cursor.fetchone()[0]
        return

    # 4. New contacts, subscribed to the list. An address created elsewhere meanwhile
    #    is left to the other writer (ON CONFLICT DO NOTHING) and counted as skipped.
    def insert_new(on_conflict: str) -> None:
        cursor.execute(
            f"""
            WITH ins AS (
                INSERT INTO contacts_contact
                    (email, first_name, last_name, attributes, status, created_at, updated_at)
                SELECT s.email, s.first_name, s.last_name, s.attributes, 'active', now(), now()
                FROM {stage} s
                WHERE NOT EXISTS
                    (SELECT 1 FROM {stage}_existing e WHERE e.email_lower = s.email_lower)
                ORDER BY s.row_no
                {on_conflict}
                RETURNING id
            ), sub AS (
                INSERT INTO contacts_subscription
                    (contact_id, mailing_list_id, status, created_at, updated_at)
                SELECT id, %s, 'subscribed', now(), now() FROM ins
                ON CONFLICT (contact_id, mailing_list_id) DO NOTHING
            )
            SELECT (SELECT count(*) FROM ins),
                (SELECT count(*) FROM {stage} s WHERE NOT EXISTS
                    (SELECT 1 FROM {stage}_existing e WHERE e.email_lower = s.email_lower))
            """,
            [mailing_list.pk],
        )

    # A plain INSERT first: ON CONFLICT's speculative insertion costs about a fifth more
    # per row, and it is only needed when someone created one of these addresses after
    # step 3 looked (a sign-up form, the API): then the savepoint rolls back and the
    # insert runs again, leaving those addresses to the other writer.
    try:
        with transaction.atomic():
            insert_new("")
    except IntegrityError:
        insert_new("ON CONFLICT DO NOTHING")
    created, wanted = cursor.fetchone()
    tally.created += created
    tally.skipped += wanted - created

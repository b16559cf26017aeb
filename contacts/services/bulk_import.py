"""The PostgreSQL bulk path of the importer: COPY, mostly straight into the contacts.

The file is streamed once more after ``inspect_csv``, in chunks, on a reading thread that
stays a chunk ahead of the writes (``_Producer``). Each row is validated in Python
(address, typed custom fields); the first row of an address that is neither a
contact yet nor suppressed is written with COPY straight into the contacts and the list,
with its id taken from the contacts' sequence. Everything else (addresses that exist,
suppressed ones, later duplicates in the file) goes into an unlogged staging table, and
a set-based merge at the end applies it with the rules of the batch path. Chunks and
merge run in one transaction, so the list either gets the whole file or, after a crash
or a cancellation, nothing at all (the staging table is dropped whatever happens;
running the import again is safe). Progress is written through a second connection so
the progress bar moves while that transaction is open.

The outcome is the batch path's (``imports._import_batch``), rule for rule: later
non-empty values of a duplicated address win, existing contacts who left are skipped or,
under LeftPolicy.UPDATE, get their details updated (never their status or subscriptions),
suppressed addresses are refused, and only real changes count as updates.
"""

# The SQL below names staging tables built from the import's integer id, never from input;
# values go in as parameters or through COPY.
# ruff: noqa: S608

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, NamedTuple

import orjson
import psycopg
from django.core.exceptions import ValidationError
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.utils import translation
from django.utils.translation import gettext as _

from contacts import importing
from contacts.models import ContactImport, CustomField, MailingList, Suppression
from contacts.services.contacts import NAME_MAX_LENGTH, normalize_email
from contacts.services.indexes import custom_field_indexes_aside

log = logging.getLogger(__name__)

PROGRESS_EVERY = 20_000
STAGE_COLUMNS = "(email, first_name, last_name, attributes, row_no, email_lower, dup)"


def _stage_name(import_id: int) -> str:
    return f"contacts_import_stage_{import_id}"


def _drop(cursor: Any, *tables: str) -> None:
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


class _Staged(NamedTuple):
    """A validated row, ``body`` already in COPY's text format.

    ``body`` is the email, first name, last name and attributes columns, escaped and
    tab-separated: lines of the direct COPY into the contacts and of the staging table
    both start with it.
    """

    row_no: int
    key: str
    dup: bool
    body: str


# COPY's text format: backslash, tab, newline and carriage return are escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _needs_escape(line: str, tabs: int) -> bool:
    """Whether cells joined by ``tabs`` tabs hold a character COPY must escape: one test
    of the joined line instead of four per row for the cells that never need it."""
    return line.count("\t") != tabs or "\\" in line or "\n" in line or "\r" in line


def _copy_text(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


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
    as it goes. A cancellation is honoured between chunks and before the merge, and
    rolls everything back, so a cancelled COPY import writes nothing. Raises whatever the
    database raises; the caller records the failure. A big import into a smaller table
    sets the custom-field indexes aside meanwhile (``indexes.custom_field_indexes_aside``).
    """
    creates = mode != ContactImport.Mode.UPDATE_ONLY
    with custom_field_indexes_aside(info.rows_total if creates else 0):
        _copy(contact_import, tally, open_file, info, fields, mode, left_policy, on_progress)


def _copy(
    contact_import: ContactImport,
    tally: Any,
    open_file: importing.OpenFile,
    info: importing.CsvInfo,
    fields: dict[str, CustomField],
    mode: str,
    left_policy: str,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    from contacts.services.imports import attributes_typer, contact_import_check_cancelled

    stage = _stage_name(contact_import.pk)
    typer = attributes_typer(fields)
    seen: set[str] = set()
    progress = _ProgressWriter(contact_import.pk)
    with connection.cursor() as cursor:
        _drop(cursor, stage)
        cursor.execute(
            f"CREATE UNLOGGED TABLE {stage} (row_no integer, email text, email_lower text, "
            "first_name text, last_name text, attributes jsonb, dup boolean)"
        )
        loader = None
        try:
            with transaction.atomic():
                if mode != ContactImport.Mode.UPDATE_ONLY:
                    loader = _DirectLoader(cursor, contact_import.mailing_list)
                contact_import_check_cancelled(contact_import.pk)
                rows = importing.read_contacts(open_file, info)
                lines = loader.lines if loader is not None else None
                producer = _Producer(_validated_chunks(rows, typer, seen, lines))
                try:
                    for chunk in producer:
                        chunk.count(tally)
                        staged = loader.load(chunk) if loader is not None else chunk.rows
                        _stage(cursor, stage, staged)
                        progress.write(tally)
                        if on_progress is not None:
                            on_progress(tally.rows_done, info.rows_total)
                        contact_import_check_cancelled(contact_import.pk)
                finally:
                    producer.close()
                seen.clear()
                progress.write(tally)
                _merge(cursor, contact_import.mailing_list, stage, tally, mode, left_policy)
                if loader is not None:
                    tally.created += loader.created
        finally:
            progress.close()
            if loader is not None:
                loader.close()
            _drop(cursor, stage)


class _Chunk(NamedTuple):
    """A chunk of the file as read: its valid rows and what to count for the rest.

    The reading thread counts nothing itself; the database thread adds each chunk to the
    import's tally as it takes it, so the tally only ever holds the chunks dealt with.
    When the import may create contacts, the reading thread also numbers the chunk's
    first rows with ids from the contacts' sequence and writes their COPY lines for the
    contacts and the list (``contacts``, ``subscriptions``), ready to send as they are.
    """

    rows: list[_Staged]
    # The addresses of the chunk's first rows, one per line, for the existence lookup.
    firsts: str
    read: int
    dups: int
    refusals: list[tuple[int, str, str]]
    ids: list[str]
    contacts: str
    subscriptions: str

    def count(self, tally: Any) -> None:
        tally.rows_done += self.read
        tally.skipped += self.dups
        for refusal in self.refusals:
            tally.refuse(*refusal)


class _Lines:
    """COPY lines for new contacts and their subscriptions, numbered ahead of time.

    Ids are taken from the contacts' own sequence through a connection of its own, in
    autocommit: a sequence hands out each number once, whatever transaction asks, so the
    numbers are safe to use in the import's transaction; ones not used leave a gap.
    """

    def __init__(self, mailing_list: MailingList, sequence: str) -> None:
        # The timestamps are the columns' defaults (the COPY statement's start).
        self.contact_tail = "\tactive\n"
        self.subscription_tail = f"\t{mailing_list.pk}\tsubscribed\n"
        self.sequence = sequence
        self.connection = psycopg.connect(**connection.get_connection_params(), autocommit=True)

    def ids(self, count: int) -> list[str]:
        row = self.connection.execute(
            "SELECT string_agg(nextval(%s)::text, ',') FROM generate_series(1, %s)",
            [self.sequence, count],
        ).fetchone()
        return row[0].split(",") if row and row[0] else []

    def contact(self, body: str, contact_id: str) -> str:
        return f"{body}\t{contact_id}{self.contact_tail}"

    def subscription(self, contact_id: str) -> str:
        return f"{contact_id}{self.subscription_tail}"

    def close(self) -> None:
        self.connection.close()


def _validated_chunks(
    rows: Iterator[importing.ParsedRow], typer: Any, seen: set[str], lines: _Lines | None
) -> Generator[_Chunk, None, None]:
    """The file in chunks of up to PROGRESS_EVERY rows read.

    Refused rows are left out with their reason; a later row of an address already seen
    is marked ``dup`` and counted as skipped (the merge folds its values into the first).
    """
    chunk: list[_Staged] = []
    firsts: list[str] = []
    refusals: list[tuple[int, str, str]] = []
    dups = count = 0
    for row in rows:
        count += 1
        if not row.email:
            refusals.append((row.row, "", _("No email address.")))
        else:
            try:
                email = normalize_email(row.email)
            except ValidationError as exc:
                refusals.append((row.row, row.email, exc.messages[0]))
                email = ""
            if email:
                attributes, reason = typer(row.attributes)
                if reason is not None:
                    refusals.append((row.row, email, reason))
                else:
                    key = email.lower()
                    dup = key in seen
                    if dup:
                        dups += 1
                    else:
                        seen.add(key)
                        firsts.append(key)
                    cells = (
                        email,
                        row.first_name[:NAME_MAX_LENGTH],
                        row.last_name[:NAME_MAX_LENGTH],
                        orjson.dumps(attributes).decode(),
                    )
                    body = "\t".join(cells)
                    if _needs_escape(body, len(cells) - 1):
                        body = "\t".join([_copy_text(cell) for cell in cells])
                    chunk.append(_Staged(row.row, key, dup, body))
        if count >= PROGRESS_EVERY:
            yield _chunk(chunk, firsts, dups, count, refusals, lines)
            chunk, firsts, refusals, dups, count = [], [], [], 0, 0
    if count:
        yield _chunk(chunk, firsts, dups, count, refusals, lines)


def _chunk(
    rows: list[_Staged],
    firsts: list[str],
    dups: int,
    read: int,
    refusals: list[tuple[int, str, str]],
    lines: _Lines | None,
) -> _Chunk:
    ids: list[str] = []
    contacts = subscriptions = ""
    if lines is not None and firsts:
        ids = lines.ids(len(firsts))
        bodies = (row.body for row in rows if not row.dup)
        contacts = "".join([lines.contact(body, i) for body, i in zip(bodies, ids, strict=True)])
        subscriptions = "".join([lines.subscription(i) for i in ids])
    return _Chunk(rows, "\n".join(firsts), read, dups, refusals, ids, contacts, subscriptions)


class _Producer:
    """Reads and validates the file on a thread of its own, a chunk ahead of the writes.

    Validation is Python's work and the writes are PostgreSQL's, in another process: with
    the two overlapped, each chunk is read while the one before it is being written. The
    thread shares no state but the ``seen`` set, which nothing else reads until it has
    finished, and its only database work is numbering rows (``_Lines.ids``) on a
    connection of its own. Iterating re-raises its errors.
    """

    AHEAD = 1
    # The reading thread runs pure Python and holds the GIL but for these handovers: at
    # Python's default of 5 ms, the writing thread waited up to that long after each of
    # its round trips to the database, about a third of the writes' time. The process is
    # a worker running this one import, so the interval is set for it while it runs.
    SWITCH_INTERVAL = 0.0005

    def __init__(self, chunks: Generator[_Chunk, None, None]) -> None:
        self._chunks = chunks
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._interval, self.SWITCH_INTERVAL))
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.AHEAD)
        self._stop = threading.Event()
        self._language = translation.get_language()
        self._thread = threading.Thread(target=self._run, name="import-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: Any
        try:
            with translation.override(self._language):
                for chunk in self._chunks:
                    if not self._put(chunk):
                        return
            item = _DONE
        except BaseException as exc:  # handed to the consumer, which raises it
            item = exc
        self._put(item)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[_Chunk]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._interval)
        self._chunks.close()  # the file, when the import stopped before its end


_DONE = object()


def _stage(cursor: Any, stage: str, rows: list[_Staged]) -> None:
    if not rows:
        return
    with cursor.copy(f"COPY {stage} {STAGE_COLUMNS} FROM STDIN") as copy:
        copy.write(
            "".join(
                [
                    f"{r.body}\t{r.row_no}\t{_copy_text(r.key)}\t{'t' if r.dup else 'f'}\n"
                    for r in rows
                ]
            )
        )


class _DirectLoader:
    """COPY the first rows of new addresses straight into the contacts and the list.

    A row goes straight in when its address is neither a contact nor suppressed when its
    chunk is looked at (with nothing suppressed, the COPY itself is the look: see
    ``ask``); the rest is returned for the staging table. Ids come from the
    contacts' own sequence, so the subscriptions can be written in the same pass. When
    another writer creates one of the chunk's addresses meanwhile (a sign-up form, the
    API), the unique index stops the COPY: the chunk's savepoint is rolled back and the
    whole chunk goes to the staging table instead, where the merge leaves such an address
    to the other writer.
    """

    def __init__(self, cursor: Any, mailing_list: MailingList) -> None:
        self.cursor = cursor
        self.created = 0
        cursor.execute("SELECT pg_get_serial_sequence('contacts_contact', 'id')")
        (sequence,) = cursor.fetchone()
        self.lines = _Lines(mailing_list, sequence)
        # What the foreign-key checks of the subscriptions written here would do: keep
        # the list from being deleted until this transaction ends (see ``_write``).
        cursor.execute(
            "SELECT 1 FROM contacts_mailinglist WHERE id = %s FOR KEY SHARE", [mailing_list.pk]
        )
        self.unchecked = _can_skip_key_checks(cursor)
        # A scalar subquery per key, not EXISTS: the planner would turn EXISTS into a hash
        # join over the whole contacts table, whose statistics still say "empty" while
        # this transaction fills it, and scan it again for every chunk.
        checks = ["(SELECT c.id FROM contacts_contact c WHERE lower(c.email) = k.key) IS NOT NULL"]
        suppressions = _suppression_conditions("k.key")
        checks += [
            f"EXISTS (SELECT 1 FROM contacts_suppression x WHERE {condition})"
            for condition in suppressions
        ]
        # With nothing suppressed, the unique index finds the known addresses as well as
        # the lookup does, for free: a chunk is written without asking, and only after
        # a chunk has met a known address are the rest looked up first.
        self.ask = bool(suppressions)
        # The keys travel as one text, a line each (an address has no line break): a
        # parameter list of 50,000 strings costs psycopg more than the lookup itself.
        self.lookup = (
            "SELECT k.key FROM unnest(string_to_array(%s, chr(10))) AS k(key) WHERE "
            + " OR ".join(checks)
        )

    def load(self, chunk: _Chunk) -> list[_Staged]:
        """Write the chunk's new addresses; return the rows left for the staging table."""
        if not chunk.firsts:
            return chunk.rows
        known: set[str] = set()
        if self.ask:
            self.cursor.execute(self.lookup, [chunk.firsts])
            known = {key for (key,) in self.cursor.fetchall()}
        if not known:
            # The usual case: every first row is new and its lines are ready.
            created, contacts, subscriptions = len(chunk.ids), chunk.contacts, chunk.subscriptions
            rest = [row for row in chunk.rows if row.dup] if chunk.dups else []
        else:
            ids = iter(chunk.ids)
            lines, subs, rest = [], [], []
            for row in chunk.rows:
                if row.dup:
                    rest.append(row)
                    continue
                contact_id = next(ids)
                if row.key in known:
                    rest.append(row)
                else:
                    lines.append(self.lines.contact(row.body, contact_id))
                    subs.append(self.lines.subscription(contact_id))
            created, contacts, subscriptions = len(lines), "".join(lines), "".join(subs)
        if not created:
            return chunk.rows
        try:
            # COPY is psycopg's own, outside Django's error wrapping: wrap it here.
            with transaction.atomic(), connection.wrap_database_errors:
                self._write(contacts, subscriptions)
        except IntegrityError:
            self.ask = True
            return chunk.rows
        self.created += created
        return rest

    def _write(self, contacts: str, subscriptions: str) -> None:
        # The foreign keys of these subscriptions hold by construction: each contact is
        # one this transaction is writing (nobody else can see it, let alone delete it)
        # and the list is locked against deletion since ``__init__``. PostgreSQL would
        # still check both for every row at commit, which costs more than the COPY
        # itself; replica mode leaves out those checks (and only them, as the tables
        # have no other triggers), for these two statements only.
        if self.unchecked:
            self.cursor.execute("SET LOCAL session_replication_role = replica")
        with self.cursor.copy(
            "COPY contacts_contact (email, first_name, last_name, attributes, id, status) "
            "FROM STDIN"
        ) as copy:
            copy.write(contacts)
        with self.cursor.copy(
            "COPY contacts_subscription (contact_id, mailing_list_id, status) FROM STDIN"
        ) as copy:
            copy.write(subscriptions)
        if self.unchecked:
            self.cursor.execute("SET LOCAL session_replication_role = origin")

    def close(self) -> None:
        self.lines.close()


def _can_skip_key_checks(cursor: Any) -> bool:
    """Whether ``_write`` may leave out the foreign-key checks of its subscriptions.

    Replica mode needs the right to set ``session_replication_role`` (a superuser, or
    on PostgreSQL 15+ a role granted ``SET ON PARAMETER session_replication_role``),
    and it turns off every trigger, so it is used only while the two tables have none
    but the foreign keys' own. Without it the import is right, only slower.
    """
    if connection.pg_version >= 150000:
        cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
    else:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    if not (row and row[0]):
        return False
    cursor.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN "
        "('contacts_contact'::regclass, 'contacts_subscription'::regclass))"
    )
    return bool(cursor.fetchone()[0])


class _ProgressWriter:
    """Writes the import's progress through a connection of its own, in autocommit.

    The import's own connection holds one transaction open until the merge is done, and
    nothing it writes is seen before then. Progress is only shown, so a failure to write
    it is logged and the import goes on.
    """

    def __init__(self, import_id: int) -> None:
        self.import_id = import_id
        self.connection = connections.create_connection(DEFAULT_DB_ALIAS)

    def write(self, tally: Any) -> None:
        try:
            with self.connection.cursor() as cursor:
                # Never wait long on the row: the import must not stall on its progress bar.
                cursor.execute("SET lock_timeout = '2s'")
                cursor.execute(
                    "UPDATE contacts_contactimport SET rows_done = %s, refused = %s, "
                    "skipped = %s WHERE id = %s",
                    [tally.rows_done, tally.refused, tally.skipped, self.import_id],
                )
        except DatabaseError:
            log.warning("Contact import %s: could not write progress", self.import_id)

    def close(self) -> None:
        self.connection.close()


def _suppression_conditions(key: str) -> list[str]:
    """SQL conditions on ``contacts_suppression x`` matching the lower-cased address
    ``key`` (an SQL expression): the address, its domain, or an erased address's hash.
    Only the kinds that have entries are checked."""
    kinds = set(Suppression.objects.values_list("kind", flat=True).distinct())
    conditions = []
    if Suppression.Kind.EMAIL in kinds:
        conditions.append(f"(x.kind = 'email' AND x.value = {key})")
    if Suppression.Kind.DOMAIN in kinds:
        conditions.append(f"(x.kind = 'domain' AND x.value = split_part({key}, '@', 2))")
    if Suppression.Kind.HASH in kinds:
        conditions.append(
            f"(x.kind = 'hash' AND x.value = encode(sha256(convert_to({key}, 'UTF8')), 'hex'))"
        )
    return conditions


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
        folded = f"""(
                SELECT email_lower,
                    (array_agg(first_name ORDER BY row_no DESC)
                        FILTER (WHERE first_name <> ''))[1] AS first_name,
                    (array_agg(last_name ORDER BY row_no DESC)
                        FILTER (WHERE last_name <> ''))[1] AS last_name,
                    (SELECT jsonb_object_agg(e.key, e.value ORDER BY x.row_no)
                     FROM {dups} x, jsonb_each(x.attributes) e
                     WHERE x.email_lower = g.email_lower) AS attributes
                FROM {dups} g GROUP BY email_lower
            ) d"""
        cursor.execute(
            f"""
            UPDATE {stage} s SET
                first_name = coalesce(d.first_name, s.first_name),
                last_name = coalesce(d.last_name, s.last_name),
                attributes = s.attributes || coalesce(d.attributes, '{{}}'::jsonb)
            FROM {folded}
            WHERE s.email_lower = d.email_lower AND NOT s.dup
            """
        )
        # A duplicate whose first row is not staged belongs to an address this import
        # wrote straight into the contacts (every other first row is staged): fold it
        # into that new contact, which is still counted as created.
        cursor.execute(
            f"""
            UPDATE contacts_contact c SET
                first_name = coalesce(d.first_name, c.first_name),
                last_name = coalesce(d.last_name, c.last_name),
                attributes = c.attributes || coalesce(d.attributes, '{{}}'::jsonb)
            FROM {folded}
            WHERE lower(c.email) = d.email_lower AND NOT EXISTS
                (SELECT 1 FROM {stage} f WHERE f.email_lower = d.email_lower AND NOT f.dup)
            """
        )
        cursor.execute(f"DELETE FROM {stage} WHERE dup")
    # 2. Suppressed addresses (the address, its domain, or an erased address's hash).
    for condition in _suppression_conditions("s.email_lower"):
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

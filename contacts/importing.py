"""Reading contact CSV files: encoding, delimiter, header mapping, rows.

Pure file handling with no database access, so it can grow into the full importer (column
mapping chosen by the user, more encodings, a COPY-based bulk path) without touching the
writes in ``services.py``. Files are always streamed: nothing here reads a whole file into
memory, and callers pass a function that opens the file afresh for each pass.

A file is read three times: a short head for the encoding and the delimiter, one full pass
(``inspect_csv``) that validates the encoding and the CSV structure and counts the rows
before anything is written, and the pass that yields the rows (``read_contacts``).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import BinaryIO

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

OpenFile = Callable[[], BinaryIO]

DELIMITERS = ",;\t|"
DELIMITER_NAMES = {
    ",": gettext_lazy("comma"),
    ";": gettext_lazy("semicolon"),
    "\t": gettext_lazy("tab"),
    "|": gettext_lazy("pipe"),
}
HEAD_BYTES = 64 * 1024
SNIFF_CHARS = 16 * 1024
CHUNK_BYTES = 256 * 1024

# Spreadsheet files uploaded by mistake: a zip (xlsx, ods, numbers) or an OLE2 file (xls).
WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")


def header_key(header: str) -> str:
    """Compare headers the way people write them: case, spaces, dashes and dots ignored."""
    return "".join(ch for ch in header.casefold() if ch.isalnum())


_key = header_key


# "Email Address" is Mailchimp's export; the Russian names are Unisender's and Excel's.
EMAIL_HEADERS = frozenset(
    map(_key, ["email", "e-mail", "email address", "mail", "почта", "электронная почта"])
)
FIRST_NAME_HEADERS = frozenset(
    map(_key, ["first name", "firstname", "fname", "given name", "first", "forename", "имя"])
)
LAST_NAME_HEADERS = frozenset(
    map(_key, ["last name", "lastname", "lname", "surname", "family name", "last", "фамилия"])
)
# A single full-name column becomes the first name: splitting names is wrong for too many
# people, and "Hi {{ first_name }}" reads fine with a full name.
FULL_NAME_HEADERS = frozenset(map(_key, ["name", "full name", "фио"]))


class ImportFileError(Exception):
    """The file cannot be imported; the message tells the user what to do about it."""


@dataclass(frozen=True)
class Columns:
    """Which column holds what; indexes into a row."""

    email: int
    first_name: int | None
    last_name: int | None
    attributes: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class CsvInfo:
    encoding: str
    delimiter: str
    header: tuple[str, ...]
    columns: Columns
    rows_total: int


@dataclass(slots=True)
class ParsedRow:
    """One data row. ``row`` is the spreadsheet row number: the header row is row 1."""

    row: int
    email: str
    first_name: str = ""
    last_name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def detect_encoding(head: bytes) -> str:
    """Pick the codec from the byte-order mark; without one the file must be UTF-8.

    Raises ImportFileError for spreadsheets, UTF-32 and NUL-laden (binary or BOM-less
    UTF-16) files, which would otherwise come out as garbage rows.
    """
    if head.startswith(WORKBOOK_MAGIC):
        raise ImportFileError(workbook_message())
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ImportFileError(_not_utf8_message())
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise ImportFileError(_not_utf8_message())
    return "utf-8"


LEGACY_SAMPLE_BYTES = 1024 * 1024


def guess_legacy_encoding(sample: bytes) -> str | None:
    """Name the 8-bit code page of text that is not UTF-8: Windows-1251 or Latin-1.

    Cyrillic words are runs of bytes above 0x7F; Western European text has them one at a
    time between ASCII letters ("Müller", "Hélène"). Latin-1 is read as Windows-1252,
    which is what "ANSI" CSV from Excel really is, unless bytes undefined there occur.
    None when it is neither, or when valid UTF-8 text comes before the first bad byte
    (a damaged UTF-8 file, not a legacy one).
    """
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        valid_part = sample[: exc.start]
    else:
        valid_part = sample  # the bad byte is further on
    if any(byte >= 0x80 for byte in valid_part):
        return None  # real UTF-8 before the bad byte: a damaged UTF-8 file
    flags = [byte >= 0x80 for byte in sample]
    high = sum(flags)
    # High bytes with a high neighbour: letters inside a word of a non-Latin script.
    paired = sum(
        1
        for i, is_high in enumerate(flags)
        if is_high and ((i and flags[i - 1]) or (i + 1 < len(flags) and flags[i + 1]))
    )
    if high and paired / high > 0.5:
        # Words of a non-Latin script that are not Windows-1251: reading them as Latin-1
        # would store garbage, so refuse instead.
        try:
            sample.decode("cp1251")
        except UnicodeDecodeError:
            return None
        return "cp1251"
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def workbook_message() -> str:
    return _(
        "This is a spreadsheet workbook, not a CSV file. In your spreadsheet program choose "
        "“Save as”, pick “CSV UTF-8” and upload that file."
    )


def _not_utf8_message(line: int | None = None) -> str:
    if line is None:
        return _("The file is not UTF-8 text. Save it as “CSV UTF-8” and upload it again.")
    return _(
        "The file is not UTF-8 text (the first character that is not UTF-8 is on line "
        "%(line)s). Save it as “CSV UTF-8” and upload it again."
    ) % {"line": line}


def _decode_error(open_file: OpenFile, encoding: str) -> ImportFileError:
    """Build the not-UTF-8 error, naming the line of the first bad byte when we can."""
    if encoding not in {"utf-8", "utf-8-sig"}:
        return ImportFileError(_not_utf8_message())
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with open_file() as fh:
        while True:
            chunk = fh.read(CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # UTF-8 never has a newline byte inside a character, so counting bytes works.
                return ImportFileError(
                    _not_utf8_message(line + exc.object[: exc.start].count(b"\n"))
                )
            if not chunk:
                return ImportFileError(_not_utf8_message())
            line += chunk.count(b"\n")


def sniff_delimiter(sample: str) -> str:
    """Guess the delimiter among , ; TAB | from the first lines; comma when unsure.

    csv.Sniffer decides; its answer is overruled when the delimiter it picked is absent
    from the header line while another candidate is there, the one mistake it makes on
    short files with punctuation in the values. Excel's ``sep=;`` first line, when present,
    names the delimiter outright.
    """
    declared = _declared_delimiter(sample)
    if declared:
        return declared
    if "\n" in sample:
        sample = sample[: sample.rfind("\n") + 1]
    header = next((line for line in sample.splitlines() if line.strip()), "")
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    counts = {d: header.count(d) for d in DELIMITERS}
    if sniffed and (counts[sniffed] or not any(counts.values())):
        return sniffed
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _declared_delimiter(text: str) -> str | None:
    """The delimiter of a ``sep=X`` line (Excel writes one for its regional CSV dialects)."""
    if text[:4].lower() == "sep=" and len(text) > 4 and text[4] in DELIMITERS:
        return text[4]
    return None


def map_columns(header: list[str], delimiter: str) -> Columns:
    """Find the email, name and attribute columns; raise ImportFileError without an email.

    The error lists the columns seen: a wrong delimiter shows up as one long column.
    """
    email = first = last = full = None
    attributes: list[tuple[int, str]] = []
    for index, raw in enumerate(header):
        name = raw.strip()
        key = _key(name)
        if not key:
            continue
        if key in EMAIL_HEADERS and email is None:
            email = index
        elif key in FIRST_NAME_HEADERS and first is None:
            first = index
        elif key in LAST_NAME_HEADERS and last is None:
            last = index
        elif key in FULL_NAME_HEADERS and full is None:
            full = index
        else:
            attributes.append((index, name))
    if email is None:
        seen = ", ".join(f"“{h.strip()}”" for h in header if h.strip()) or "—"
        raise ImportFileError(
            _(
                "No email column found. The header row must name one, for example “email” "
                "or “Email Address”. Columns found: %(columns)s, reading the file as "
                "%(delimiter)s-separated. If these are not the file's columns, the file uses "
                "another delimiter: save it again as “CSV UTF-8 (comma delimited)”."
            )
            % {"columns": seen, "delimiter": DELIMITER_NAMES[delimiter]}
        )
    if first is None and full is not None:
        first = full
    elif full is not None:
        attributes.append((full, header[full].strip()))
    return Columns(email, first, last, tuple(sorted(attributes)))


def _rows(open_file: OpenFile, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (spreadsheet row number, cells) for each non-blank record, header included."""
    with open_file() as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        number = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    _(
                        "The file is not valid CSV near line %(line)s (%(error)s). Check for "
                        "a quote that is opened and never closed."
                    )
                    % {"line": reader.line_num, "error": exc}
                ) from None
            number += 1
            if number == 1 and _declared_delimiter(delimiter.join(cells)):
                continue
            # Blank lines and rows of empty cells are skipped (most rows: a first cell).
            if cells and (cells[0].strip() or any(cell.strip() for cell in cells)):
                yield number, cells


def inspect_csv(open_file: OpenFile, columns: Columns | None = None) -> CsvInfo:
    """Validate the whole file and describe it, before anything is written.

    Reads the head for the encoding and delimiter, then streams the file once to check that
    it decodes and parses and to count its data rows. Raises ImportFileError with a message
    for the user. ``columns`` is the mapping the user chose; without it the columns are
    guessed from the header names.
    """
    with open_file() as fh:
        head = fh.read(HEAD_BYTES)
    if not head.strip():
        raise ImportFileError(_("The file is empty."))
    encoding = detect_encoding(head)
    chosen = columns
    try:
        sample = codecs.getincrementaldecoder(encoding)().decode(
            head[: SNIFF_CHARS * 2], final=len(head) < SNIFF_CHARS * 2
        )
        delimiter = sniff_delimiter(sample[:SNIFF_CHARS])
        with closing(_rows(open_file, encoding, delimiter)) as rows:
            first = next(rows, None)
            if first is None:
                raise ImportFileError(_("The file is empty."))
            header = first[1]
            columns = chosen or map_columns(header, delimiter)
            total = sum(1 for _row in rows)
    except UnicodeDecodeError:
        if encoding != "utf-8":
            raise _decode_error(open_file, encoding) from None
        # Not UTF-8 and no byte-order mark: a legacy "ANSI" export. Guess its code page
        # from the first megabyte and read the file again with it.
        with open_file() as fh:
            legacy = guess_legacy_encoding(fh.read(LEGACY_SAMPLE_BYTES))
        if legacy is None:
            raise _decode_error(open_file, encoding) from None
        return _inspect_with(open_file, legacy, head, chosen)
    return CsvInfo(encoding, delimiter, tuple(header), columns, total)


def _inspect_with(
    open_file: OpenFile, encoding: str, head: bytes, chosen: Columns | None = None
) -> CsvInfo:
    """The full pass of ``inspect_csv`` with a known 8-bit encoding."""
    try:
        sample = head[:SNIFF_CHARS].decode(encoding)
        delimiter = sniff_delimiter(sample)
        with closing(_rows(open_file, encoding, delimiter)) as rows:
            first = next(rows, None)
            if first is None:
                raise ImportFileError(_("The file is empty."))
            header = first[1]
            columns = chosen or map_columns(header, delimiter)
            total = sum(1 for _row in rows)
    except UnicodeDecodeError:
        # Windows-1251 has one unused byte; a file with it is not text we can read.
        raise ImportFileError(_not_utf8_message()) from None
    return CsvInfo(encoding, delimiter, tuple(header), columns, total)


@dataclass(frozen=True)
class CsvPreview:
    """The header and first data rows, for the page where the user maps the columns."""

    header: tuple[str, ...]
    samples: tuple[tuple[str, ...], ...]


def preview_csv(open_file: OpenFile, rows: int = 5) -> CsvPreview:
    """Read the header and up to ``rows`` data rows from the head of the file.

    Cheap enough to run in a request: only the head is decoded. Raises ImportFileError for
    an empty, binary or undecodable head; the whole file is validated by ``inspect_csv``.
    """
    with open_file() as fh:
        head = fh.read(HEAD_BYTES)
    if not head.strip():
        raise ImportFileError(_("The file is empty."))
    encoding = detect_encoding(head)
    if encoding == "utf-8":
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < HEAD_BYTES)
        except UnicodeDecodeError:
            encoding = guess_legacy_encoding(head) or ""
            if not encoding:
                raise ImportFileError(_not_utf8_message()) from None
    found: list[tuple[str, ...]] = []
    try:
        sample = codecs.getincrementaldecoder(encoding)().decode(head[:SNIFF_CHARS], final=False)
        delimiter = sniff_delimiter(sample)
        with closing(_rows(open_file, encoding, delimiter)) as records:
            for _number, cells in records:
                found.append(tuple(cell.strip() for cell in cells))
                if len(found) > rows:
                    break
    except UnicodeDecodeError:
        pass  # a bad byte further on: keep what was read; the full check reports it
    if not found:
        raise ImportFileError(_("The file is empty."))
    header = found[0]
    samples = tuple(row + ("",) * (len(header) - len(row)) for row in found[1:])
    return CsvPreview(header, samples)


def _cell(cells: list[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def read_contacts(open_file: OpenFile, info: CsvInfo) -> Iterator[ParsedRow]:
    """Yield each data row of a file that ``inspect_csv`` accepted.

    Values are stripped; empty attribute values are left out so they never overwrite.
    """
    columns = info.columns
    email, first, last = columns.email, columns.first_name, columns.last_name
    named = columns.attributes
    # A row with every column the header has (nearly all of them) is read without the
    # bounds checks of ``_cell``: a million-row file spends seconds in such calls.
    width = 1 + max(i for i in (email, first, last, *(i for i, _n in named)) if i is not None)
    try:
        with closing(_rows(open_file, info.encoding, info.delimiter)) as rows:
            next(rows, None)  # the header
            for number, cells in rows:
                if len(cells) < width:
                    attributes = {}
                    for index, name in named:
                        value = _cell(cells, index)
                        if value:
                            attributes[name] = value
                    yield ParsedRow(
                        number,
                        _cell(cells, email),
                        _cell(cells, first),
                        _cell(cells, last),
                        attributes,
                    )
                    continue
                attributes = {n: value for i, n in named if (value := cells[i].strip())}
                yield ParsedRow(
                    number,
                    cells[email].strip(),
                    cells[first].strip() if first is not None else "",
                    cells[last].strip() if last is not None else "",
                    attributes,
                )
    except UnicodeDecodeError:
        # Only if the file changed since inspect_csv read it.
        raise _decode_error(open_file, info.encoding) from None

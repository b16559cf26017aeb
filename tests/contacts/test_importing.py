from __future__ import annotations

import io

import pytest

from contacts import importing


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("email,name\na@x.org,Ann\n", ","),
        ("email;name\na@x.org;Ann, Lee\nb@x.org;Bob\n", ";"),
        ("email\tname\na@x.org\tAnn; Lee\n", "\t"),
        ("email|name\na@x.org|Ann\n", "|"),
        ("email\na@x.org\nb@x.org\n", ","),
        ("email;name\n", ";"),
        ('"email","name"\n"a@x.org","Lee; Ann"\n', ","),
        ("", ","),
    ],
)
def test_sniff_delimiter(sample, expected):
    assert importing.sniff_delimiter(sample) == expected


def test_sniff_delimiter_ignores_a_cut_last_line():
    sample = "email;name;city\n" + "a@x.org;Ann;Riga\n" * 20 + "b@x.org;Bo"
    assert importing.sniff_delimiter(sample) == ";"


def test_map_columns_finds_known_names_and_keeps_the_rest_as_attributes():
    columns = importing.map_columns(
        ["ID", "Email Address", "First Name", "Last Name", "", " City ", "Name"], ","
    )
    assert columns.email == 1
    assert columns.first_name == 2
    assert columns.last_name == 3
    assert columns.attributes == ((0, "ID"), (5, "City"), (6, "Name"))


def test_map_columns_without_email_names_what_it_saw():
    with pytest.raises(importing.ImportFileError) as info:
        importing.map_columns(["email;name;city"], ",")
    message = str(info.value)
    assert "“email;name;city”" in message
    assert "comma" in message


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        (b"\xef\xbb\xbfemail", "utf-8-sig"),
        (b"\xff\xfee\x00m\x00", "utf-16"),
        (b"\xfe\xff\x00e\x00m", "utf-16"),
        (b"email", "utf-8"),
    ],
)
def test_detect_encoding(head, encoding):
    assert importing.detect_encoding(head) == encoding


@pytest.mark.parametrize(
    "head",
    [
        "email\n".encode("utf-16-le"),  # UTF-16 without a byte-order mark
        b"\xff\xfe\x00\x00e\x00\x00\x00",  # UTF-32
        b"PK\x03\x04\x14\x00",  # xlsx
    ],
)
def test_detect_encoding_refuses_what_it_cannot_read(head):
    with pytest.raises(importing.ImportFileError):
        importing.detect_encoding(head)


def test_inspect_and_read_number_rows_like_a_spreadsheet():
    data = b'\nemail,note\n\na@x.org,"two\nlines"\n,,\nb@x.org,\n'

    def open_file():
        return io.BytesIO(data)

    info = importing.inspect_csv(open_file)
    rows = list(importing.read_contacts(open_file, info))

    assert info.rows_total == 2
    assert [(r.row, r.email, r.attributes) for r in rows] == [
        (4, "a@x.org", {"note": "two\nlines"}),
        (6, "b@x.org", {}),
    ]


def test_rows_shorter_or_longer_than_the_header_read_the_cells_they_have():
    """Full rows are read without bounds checks, short ones with them: same values."""
    data = (
        b"note,email,first name,last name,city\n"
        b" n1 , a@x.org , Ann , Lee , Porto \n"
        b"n2,b@x.org,Bob\n"
        b",c@x.org\n"
        b"n4,d@x.org,Dan,Doe,Braga,extra,cells\n"
        b"\t,\t\n"
        b"n6\n"
    )

    def open_file():
        return io.BytesIO(data)

    info = importing.inspect_csv(open_file)
    rows = list(importing.read_contacts(open_file, info))

    assert [(r.row, r.email, r.first_name, r.last_name, r.attributes) for r in rows] == [
        (2, "a@x.org", "Ann", "Lee", {"city": "Porto", "note": "n1"}),
        (3, "b@x.org", "Bob", "", {"note": "n2"}),
        (4, "c@x.org", "", "", {}),
        (5, "d@x.org", "Dan", "Doe", {"city": "Braga", "note": "n4"}),
        (7, "", "", "", {"note": "n6"}),
    ]


def test_unclosed_quote_is_reported_with_its_line(settings):
    data = b'email,note\na@x.org,"never closed\n' + b"x" * 200_000 + b"\n"

    with pytest.raises(importing.ImportFileError, match="not valid CSV"):
        importing.inspect_csv(lambda: io.BytesIO(data))


def test_excel_sep_line_names_the_delimiter_and_is_not_the_header():
    data = b"sep=;\nemail;note\na@x.org;b,c\n"

    def open_file():
        return io.BytesIO(data)

    info = importing.inspect_csv(open_file)
    [row] = importing.read_contacts(open_file, info)

    assert info.delimiter == ";"
    assert (row.row, row.email, row.attributes) == (3, "a@x.org", {"note": "b,c"})

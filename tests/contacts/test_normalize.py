from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from contacts.services import normalize_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  ann@example.com \t", "ann@example.com"),
        ("Ann.Lee@Example.COM", "Ann.Lee@example.com"),
        ("ann+news@Sub.Example.org", "ann+news@sub.example.org"),
        ("\u00a0ann@example.com\u00a0", "ann@example.com"),
        ("ann@example.com\r\n", "ann@example.com"),
        ("user@Bücher.DE", "user@bücher.de"),
    ],
)
def test_normalize_email_keeps_local_part_and_lowercases_domain(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ann",
        "ann@",
        "@example.com",
        "ann@@example.com",
        "ann example@example.com",
        "Ann <ann@example.com>",
        "ann@example",
        "a" * 250 + "@example.com",
    ],
)
def test_normalize_email_refuses_invalid_addresses(raw):
    with pytest.raises(ValidationError):
        normalize_email(raw)


@pytest.mark.parametrize("raw", ["ann@example.com\r\nBcc: x@y.z", "ann\n@example.com", "a\r@b.c"])
def test_normalize_email_refuses_line_breaks_inside(raw):
    with pytest.raises(ValidationError, match="line break"):
        normalize_email(raw)


def test_normalize_email_message_names_the_address():
    with pytest.raises(ValidationError) as info:
        normalize_email("not-an-address")
    assert "not-an-address" in info.value.messages[0]

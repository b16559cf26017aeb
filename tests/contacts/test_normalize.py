from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from contacts.services import contacts as contacts_services
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
        ("Иван@Пример.РФ", "Иван@пример.рф"),
        ("josé.álvarez@Example.es", "josé.álvarez@example.es"),
        ("用户@例子.广告", "用户@例子.广告"),
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
        "ива н@пример.рф",
        "ivan\u2003x@example.com",
        "ivan\u200b@example.com",
        "ivan..x@example.com",
        "ivan@example.c0m",
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


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.from_regex(contacts_services._COMMON_ADDRESS, fullmatch=True),
        st.emails(),
        st.text(alphabet=st.characters(codec="ascii"), max_size=40).map(lambda t: t + "@x.io"),
    )
)
def test_fast_path_accepts_only_what_the_full_validator_accepts(raw):
    """normalize_email skips the validator for common addresses: every one of them must be
    valid by the full rules, and normalised the same way."""
    if len(raw) > contacts_services.EMAIL_MAX_LENGTH or not (
        contacts_services._COMMON_ADDRESS.fullmatch(raw)
    ):
        return
    contacts_services.validate_email(raw)  # raises if the fast path let a bad one through
    local, _at, domain = raw.rpartition("@")
    assert normalize_email(raw) == f"{local}@{domain.lower()}"

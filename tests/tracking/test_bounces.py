"""The bounce parser against a corpus of returned messages in the formats seen in the wild."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracking import bounces

CORPUS = Path(__file__).parent / "bounces"
TOKEN = "1a.AbC-def_123"
RCPT = "Ann.Lee@Example.test"


def load(name: str, token: str = TOKEN, rcpt: str = RCPT, *, crlf: bool = True) -> bytes:
    """A corpus message with its placeholders filled, with CRLF line ends as on the wire."""
    text = (CORPUS / name).read_text().replace("{TOKEN}", token).replace("{RCPT}", rcpt)
    return text.replace("\n", "\r\n").encode() if crlf else text.encode()


# file, kind, severity, enhanced status, SMTP code
EXPECTED = [
    ("postfix_user_unknown.eml", "bounce", "hard", "5.1.1", 550),
    ("gmail_does_not_exist.eml", "bounce", "hard", "5.1.1", 550),
    ("exchange_ndr.eml", "bounce", "hard", "5.1.10", 550),
    ("qmail_failure.eml", "bounce", "hard", "5.1.1", 550),
    ("exim_mailbox_full.eml", "bounce", "soft", "5.2.2", 552),
    ("postfix_delayed.eml", "bounce", "soft", "4.4.1", None),
    ("arf_complaint.eml", "complaint", "", "", None),
    ("vacation_autoreply.eml", "autoreply", "", "", None),
    ("exchange_ooo.eml", "autoreply", "", "", None),
]


@pytest.mark.parametrize(("name", "kind", "severity", "status", "code"), EXPECTED)
def test_corpus_is_classified(name, kind, severity, status, code):
    report = bounces.parse(load(name))
    assert report.kind == kind
    assert report.severity == severity
    assert report.status == status
    assert report.smtp_code == code
    assert report.tokens == (TOKEN,)
    if kind in ("bounce", "complaint"):
        assert report.recipient == RCPT.lower()


@pytest.mark.parametrize(("name", "kind", "severity", "status", "code"), EXPECTED)
def test_bare_line_feeds_parse_the_same(name, kind, severity, status, code):
    assert bounces.parse(load(name, crlf=False)) == bounces.parse(load(name))


def test_corpus_covers_every_file():
    assert {p.name for p in CORPUS.glob("*.eml")} == {row[0] for row in EXPECTED}


def test_diagnostic_is_the_servers_explanation_not_the_returned_copy():
    report = bounces.parse(load("exim_mailbox_full.eml"))
    assert report.diagnostic == "552 5.2.2 Mailbox full: user is over quota"
    report = bounces.parse(load("postfix_user_unknown.eml"))
    assert report.diagnostic.startswith("550 5.1.1 <Ann.Lee@Example.test>: Recipient address")
    assert "\n" not in report.diagnostic


def test_arf_feedback_type_is_kept():
    report = bounces.parse(load("arf_complaint.eml"))
    assert report.feedback_type == "abuse"
    assert "abuse" in report.diagnostic


@pytest.mark.parametrize(
    ("status", "code", "severity"),
    [
        ("5.1.1", 550, "hard"),
        ("5.7.1", 554, "hard"),
        ("5.2.2", 552, "soft"),  # RFC 3463: mailbox full is a persistent transient failure
        ("4.2.2", 452, "soft"),
        ("4.4.1", None, "soft"),
        ("", 550, "hard"),
        ("", 452, "soft"),
        ("", 552, "soft"),
        ("", None, ""),
    ],
)
def test_severity(status, code, severity):
    assert bounces.severity_for(status, code) == severity


def test_a_successful_delivery_report_is_not_a_bounce():
    raw = load("postfix_user_unknown.eml").replace(b"Action: failed", b"Action: delivered")
    raw = raw.replace(b"Status: 5.1.1", b"Status: 2.0.0")
    assert bounces.parse(raw).kind == "delivered"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage without headers",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x",
        b"From: MAILER-DAEMON@x\r\nSubject: Undelivered Mail\r\n\r\n\xff\xfe",
        b"Subject: hello\r\n\r\nJust a reply from a person.",
    ],
)
def test_malformed_or_unrelated_input_never_raises(raw):
    report = bounces.parse(raw)
    assert report.kind in ("unknown", "bounce")


def test_plain_bounce_without_a_code_uses_the_wording():
    raw = (
        b"From: MAILER-DAEMON@old.test\r\nSubject: Returned mail: see transcript\r\n\r\n"
        b"----- The following addresses had permanent fatal errors -----\r\n"
        b"<gone@old.test>\r\n... User unknown\r\n"
    )
    report = bounces.parse(raw)
    assert (report.kind, report.severity, report.recipient) == ("bounce", "hard", "gone@old.test")

"""Understand mail that comes back: bounces, complaints and auto-replies. Pure: bytes in,
a ``Report`` out; no database, no network.

What is recognised, in this order (the first that fits wins):

1. RFC 5965 ARF complaints (``multipart/report; report-type=feedback-report``).
2. RFC 3464 delivery status notifications (``multipart/report;
   report-type=delivery-status``): per recipient ``Action``, ``Status`` and
   ``Diagnostic-Code``.
3. Non-standard bounces that MTAs still send as plain text (qmail's "failure notice",
   Exim's "Mail delivery failed", Exchange's "Undeliverable", old Sendmail): recognised
   by the sender (MAILER-DAEMON, postmaster), the subject or ``X-Failed-Recipients``; the
   status is the first enhanced status code (RFC 3463) or SMTP reply code in the text.
4. Auto-replies (vacation, out-of-office): ``Auto-Submitted`` other than ``no``,
   ``X-Autoreply``/``X-Autorespond``, ``Precedence: auto_reply``, or a subject such as
   "Out of Office". They are not bounces and never suppress anyone. This check comes after
   the bounce checks because real DSNs carry ``Auto-Submitted: auto-replied`` too.

Severity: a 5.x.x status is permanent (hard), 4.x.x transient (soft), except X.2.2
"mailbox full", which RFC 3463 says "should be used as a persistent transient failure":
the owner can empty the mailbox, so it counts as soft.

The VERP tokens found in the returned message (``bounces+TOKEN@``) are collected too: the
envelope recipient is what ties a bounce to its message, but a complaint relayed to some
other address still carries the original Return-Path in its copy of the headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

KIND_BOUNCE = "bounce"
KIND_COMPLAINT = "complaint"
KIND_AUTOREPLY = "autoreply"
KIND_DELIVERED = "delivered"  # a DSN for a successful delivery (NOTIFY=SUCCESS): no action
KIND_UNKNOWN = "unknown"

HARD = "hard"
SOFT = "soft"

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?<!\d)([45][0-5]\d)(?=[\s\-])")
_VERP = re.compile(r"bounces\+([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)@", re.IGNORECASE)
_ADDRESS = re.compile(r"<?([^\s<>;\"']+@[^\s<>;\"']+?)>?(?=[\s:;,]|$)")
_BOUNCE_SENDERS = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)
_BOUNCE_SUBJECTS = re.compile(
    r"undeliver|undelivered mail|delivery status notification|delivery failure|"
    r"failure notice|mail delivery failed|returned mail|delivery has failed|"
    r"could not be delivered|non[- ]?delivery",
    re.IGNORECASE,
)
_AUTOREPLY_SUBJECTS = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|autoreply|auto:|"
    r"abwesenheitsnotiz|absence|vacation|on vacation|réponse automatique)",
    re.IGNORECASE,
)
# Phrases of plain-text bounces that carry no status code at all.
_HARD_PHRASES = re.compile(
    r"user unknown|no such user|unknown user|does not exist|mailbox unavailable|"
    r"recipient (address )?rejected|address rejected|invalid recipient|no mailbox|"
    r"account (has been )?disabled|unrouteable address|host not found",
    re.IGNORECASE,
)
_SOFT_PHRASES = re.compile(
    r"mailbox (is )?full|over quota|quota exceeded|temporar(il)?y|try again later|"
    r"delayed|deferred|insufficient (system )?storage",
    re.IGNORECASE,
)
_DIAGNOSTIC_MAX = 1000


@dataclass(frozen=True)
class Report:
    """What one returned message says. ``recipient`` is the address that failed (or
    complained) as the report names it; ``tokens`` are the VERP tokens found inside."""

    kind: str
    severity: str = ""  # HARD / SOFT for bounces
    status: str = ""  # enhanced status, e.g. "5.1.1"
    smtp_code: int | None = None
    diagnostic: str = ""
    recipient: str = ""
    action: str = ""  # DSN Action (failed, delayed, delivered ...)
    feedback_type: str = ""  # ARF Feedback-Type (abuse, fraud ...)
    tokens: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_bounce(self) -> bool:
        return self.kind == KIND_BOUNCE

    @property
    def is_complaint(self) -> bool:
        return self.kind == KIND_COMPLAINT


def severity_for(status: str, smtp_code: int | None = None) -> str:
    """HARD for permanent failures, SOFT for transient ones (see the module docstring)."""
    if status:
        klass, subject, detail = status.split(".")
        if subject == "2" and detail == "2":
            return SOFT
        return HARD if klass == "5" else SOFT
    if smtp_code:
        if smtp_code == 552:  # RFC 5321: "exceeded storage allocation"
            return SOFT
        return HARD if smtp_code >= 500 else SOFT
    return ""


def status_from_text(text: str) -> tuple[str, int | None]:
    """The first enhanced status (RFC 3463) and SMTP reply code in a free-text reply, such
    as an ESP's copy of the receiving server's answer; ("", None) when it has neither."""
    return _first_enhanced(text), _first_smtp_code(text)


def parse(raw: bytes) -> Report:
    """Classify one returned message; never raises for malformed input."""
    msg = message_from_bytes(raw, policy=policy.default)
    tokens = tuple(dict.fromkeys(_VERP.findall(raw.decode("utf-8", "replace"))))
    try:
        report = _classify(msg)
    except Exception:  # a broken MIME structure must not stop the server; say so instead
        report = Report(kind=KIND_UNKNOWN, diagnostic="unparseable message")
    return _with_tokens(report, tokens)


def _with_tokens(report: Report, tokens: tuple[str, ...]) -> Report:
    return Report(**{**report.__dict__, "tokens": tokens})


def _classify(msg: EmailMessage) -> Report:
    content_type = msg.get_content_type()
    report_type = (msg.get_param("report-type") or "").lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        return _parse_arf(msg)
    if content_type == "multipart/report" and report_type in ("delivery-status", ""):
        dsn = _parse_dsn(msg)
        if dsn is not None:
            return dsn
    if _looks_like_bounce(msg):
        return _parse_plain_bounce(msg)
    if _looks_like_autoreply(msg):
        return Report(kind=KIND_AUTOREPLY, diagnostic=_one_line(str(msg.get("Subject", ""))))
    return Report(kind=KIND_UNKNOWN)


# --- RFC 5965 ------------------------------------------------------------------------------


def _parse_arf(msg: EmailMessage) -> Report:
    fields: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _header_fields(_part_text(part))
            break
    recipient = fields.get("original-rcpt-to", "")
    if not recipient:
        original = _original_headers(msg)
        if original is not None:
            recipient = _bare_address(str(original.get("To", "")))
    return Report(
        kind=KIND_COMPLAINT,
        feedback_type=fields.get("feedback-type", "abuse").lower(),
        recipient=_bare_address(recipient),
        diagnostic=_one_line(
            " ".join(
                v for v in (fields.get("feedback-type", ""), fields.get("user-agent", "")) if v
            )
        ),
    )


# --- RFC 3464 ------------------------------------------------------------------------------


def _parse_dsn(msg: EmailMessage) -> Report | None:
    status_part = None
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            status_part = part
            break
    if status_part is None:
        return None
    text = _part_text(status_part)
    # The body is one per-message block, a blank line, then one block per recipient.
    blocks = [_header_fields(b) for b in re.split(r"\r?\n\s*\r?\n", text) if b.strip()]
    recipients = [b for b in blocks if "action" in b or "final-recipient" in b]
    if not recipients:
        return None
    # One campaign message has one recipient; if a report names several, the failed one
    # matters most.
    chosen = next((b for b in recipients if b.get("action", "").lower() == "failed"), recipients[0])
    action = chosen.get("action", "").lower()
    diagnostic = _strip_type(chosen.get("diagnostic-code", ""))
    status = _first_enhanced(chosen.get("status", "")) or _first_enhanced(diagnostic)
    smtp_code = _first_smtp_code(diagnostic)
    recipient = _strip_type(chosen.get("original-recipient", "")) or _strip_type(
        chosen.get("final-recipient", "")
    )
    if action in ("delivered", "relayed", "expanded"):
        return Report(kind=KIND_DELIVERED, action=action, status=status, recipient=recipient)
    if not diagnostic:
        diagnostic = _human_text(msg)
    severity = severity_for(status, smtp_code)
    if action == "delayed":
        severity = SOFT  # a delay warning: the MTA is still trying
    return Report(
        kind=KIND_BOUNCE,
        severity=severity or HARD,
        status=status,
        smtp_code=smtp_code,
        diagnostic=_one_line(diagnostic)[:_DIAGNOSTIC_MAX],
        recipient=_bare_address(recipient),
        action=action,
    )


# --- Plain-text bounces --------------------------------------------------------------------


def _looks_like_bounce(msg: EmailMessage) -> bool:
    if msg.get("X-Failed-Recipients"):
        return True
    sender = str(msg.get("From", ""))
    subject = str(msg.get("Subject", ""))
    null_sender = str(msg.get("Return-Path", "")).strip() == "<>"
    return bool(_BOUNCE_SUBJECTS.search(subject)) and bool(
        _BOUNCE_SENDERS.search(sender) or null_sender
    )


def _parse_plain_bounce(msg: EmailMessage) -> Report:
    text = _human_text(msg)
    # Only the explanation, not the returned copy of our message (which may quote codes).
    for marker in (
        "--- Below this line is a copy of the message",
        "------ This is a copy of the message",
        "Original message headers:",
        "----- Original message -----",
        "------ Original message ------",
    ):
        at = text.find(marker)
        if at > 0:
            text = text[:at]
    failed = str(msg.get("X-Failed-Recipients", "")).strip()
    recipient = _bare_address(failed) if failed else _first_address(text)
    diagnostic = _diagnostic_line(text)
    status = _first_enhanced(text)
    smtp_code = _first_smtp_code(text)
    severity = severity_for(status, smtp_code)
    if not severity:
        if _SOFT_PHRASES.search(text):
            severity = SOFT
        elif _HARD_PHRASES.search(text) or re.search(r"permanent (error|failure)", text, re.I):
            severity = HARD
        else:
            severity = SOFT  # unknown cause: don't drop an address on a guess
    return Report(
        kind=KIND_BOUNCE,
        severity=severity,
        status=status,
        smtp_code=smtp_code,
        diagnostic=_one_line(diagnostic)[:_DIAGNOSTIC_MAX],
        recipient=recipient,
        action="failed",
    )


def _diagnostic_line(text: str) -> str:
    """The line that explains the failure: the first one carrying a code, else the first
    that names a known cause, else the first non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if _ENHANCED.search(line) or _SMTP_CODE.search(line + " "):
            return line
    for line in lines:
        if _HARD_PHRASES.search(line) or _SOFT_PHRASES.search(line):
            return line
    return lines[0] if lines else ""


# --- Auto-replies --------------------------------------------------------------------------


def _looks_like_autoreply(msg: Message) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress"):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECTS.search(str(msg.get("Subject", ""))))


# --- Helpers -------------------------------------------------------------------------------


def _part_text(part: Message) -> str:
    """The text of a part, including message/* parts that the email package parses into
    sub-messages (message/delivery-status becomes a list of header blocks)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        chunks = []
        for sub in payload:
            if isinstance(sub, Message):
                chunks.append("\n".join(f"{k}: {v}" for k, v in sub.items()))
            else:
                chunks.append(str(sub))
        return "\n\n".join(chunks)
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    return str(payload)


def _header_fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            name = key.strip().lower()
            fields.setdefault(name, value.strip())
    return fields


def _human_text(msg: EmailMessage) -> str:
    """The first text/plain part that is not the returned original message."""
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            break
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            return _part_text(part)
    if not msg.is_multipart():
        return _part_text(msg)
    return ""


def _original_headers(msg: EmailMessage) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if part.get_content_type() == "text/rfc822-headers":
            return message_from_bytes(_part_text(part).encode(), policy=policy.default)
    return None


def _strip_type(value: str) -> str:
    # "rfc822; user@example.com" / "smtp; 550 5.1.1 ..." -> the part after the type
    _type, sep, rest = value.partition(";")
    return rest.strip() if sep else value.strip()


def _first_enhanced(text: str) -> str:
    match = _ENHANCED.search(text or "")
    return ".".join(match.groups()) if match else ""


def _first_smtp_code(text: str) -> int | None:
    match = _SMTP_CODE.search((text or "") + " ")
    return int(match.group(1)) if match else None


def _bare_address(value: str) -> str:
    match = _ADDRESS.search(value.strip())
    return match.group(1).strip().rstrip(".").lower() if match else ""


def _first_address(text: str) -> str:
    for line in text.splitlines():
        found = _bare_address(line)
        if found and not _BOUNCE_SENDERS.search(found):
            return found
    return ""


def _one_line(value: str) -> str:
    return " ".join(str(value).split())

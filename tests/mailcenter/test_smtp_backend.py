from __future__ import annotations

import socket

from mailcenter.delivery import Accepted, Deferred, OutgoingMessage, Rejected
from mailcenter.delivery.smtp import SMTPBackend, classify


def _msg(ref: str, rcpt: str) -> OutgoingMessage:
    raw = (
        f"From: a@example.com\r\nTo: {rcpt}\r\nSubject: t\r\nMessage-ID: <{ref}@x>\r\n\r\nbody\r\n"
    ).encode()
    return OutgoingMessage(
        ref=ref,
        recipient=rcpt,
        return_path="b@example.com",
        from_email="a@example.com",
        subject="t",
        raw=raw,
    )


def test_one_connection_carries_the_batch(smtp_sink):
    smtp_sink.handler.replies = {"no@example.org": "550 5.1.1 unknown user"}
    backend = SMTPBackend("t", host="127.0.0.1", port=smtp_sink.port)
    with backend:
        results = backend.send_batch(
            [_msg("1", "a@example.org"), _msg("2", "no@example.org"), _msg("3", "c@example.org")]
        )
    assert isinstance(results[0], Accepted)
    assert isinstance(results[1], Rejected) and results[1].enhanced_status == "5.1.1"
    assert isinstance(results[2], Accepted)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["a@example.org"], ["c@example.org"]]
    assert smtp_sink.received[0].mail_from == "b@example.com"


def test_unreachable_server_defers_everything():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    backend = SMTPBackend("t", host="127.0.0.1", port=port, timeout=2)
    results = backend.send_batch([_msg("1", "a@example.org"), _msg("2", "b@example.org")])
    assert all(isinstance(r, Deferred) for r in results)
    backend.close()


def test_classify():
    assert isinstance(classify("1", 250, b"ok"), Accepted)
    assert isinstance(classify("1", 421, b"4.3.2 closing"), Deferred)
    rejected = classify("1", 552, "5.2.2 mailbox full")
    assert isinstance(rejected, Rejected) and rejected.enhanced_status == "5.2.2"

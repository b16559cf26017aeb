"""The smtp backend against real servers on loopback, well-behaved and not."""

from __future__ import annotations

import socket

import pytest

from mailcenter.delivery import Accepted, Deferred, OutgoingMessage, Rejected
from mailcenter.delivery.smtp import POOL, SMTPBackend, _dot_stuffed, classify
from tests.smtppeers import (
    ClosingPeer,
    DropDataPeer,
    GreylistPeer,
    Peer,
    RecipientLimitPeer,
    RejectSomePeer,
    ScriptedSMTPServer,
    StallPeer,
    self_signed_tls,
)


@pytest.fixture(autouse=True, params=[False, True], ids=["lockstep", "pipelining"])
def _pipelining(request, monkeypatch):
    """Every scripted server test runs twice: with and without PIPELINING offered."""
    monkeypatch.setattr(Peer, "pipelining", request.param)
    return request.param


@pytest.fixture(autouse=True)
def _empty_pool():
    POOL.clear()
    yield
    POOL.clear()


def _msg(ref: str, rcpt: str) -> OutgoingMessage:
    raw = (
        f"From: a@example.com\r\nTo: {rcpt}\r\nSubject: t\r\nMessage-ID: <{ref}@x>\r\n\r\n"
        + "body line\r\n" * 20
    ).encode()
    return OutgoingMessage(
        ref=ref,
        recipient=rcpt,
        return_path=f"bounces+{ref}@example.com",
        from_email="a@example.com",
        subject="t",
        raw=raw,
    )


def _batch(n: int) -> list[OutgoingMessage]:
    return [_msg(str(i), f"user{i}@example.org") for i in range(1, n + 1)]


def _send(server: ScriptedSMTPServer, messages, **options) -> list:
    # Not ``with backend``: send_batch opens the session itself and turns a refused
    # session into deferrals, which is what these tests look at.
    backend = SMTPBackend("t", host="127.0.0.1", port=server.port, **options)
    try:
        return backend.send_batch(messages)
    finally:
        backend.close()


def _kinds(results) -> list[str]:
    return [type(r).__name__ for r in results]


def test_one_connection_carries_the_batch(smtp_sink):
    smtp_sink.handler.replies = {"no@example.org": "550 5.1.1 unknown user"}
    backend = SMTPBackend("t", host="127.0.0.1", port=smtp_sink.port)
    with backend:
        results = backend.send_batch(
            [_msg("1", "a@example.org"), _msg("2", "no@example.org"), _msg("3", "c@example.org")]
        )
    assert isinstance(results[0], Accepted)
    assert "Message accepted" in results[0].reply
    assert isinstance(results[1], Rejected) and results[1].enhanced_status == "5.1.1"
    assert isinstance(results[2], Accepted)
    assert [r.rcpt_tos for r in smtp_sink.received] == [["a@example.org"], ["c@example.org"]]
    assert smtp_sink.received[0].mail_from == "bounces+1@example.com"


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
    garbled = classify("1", -1, b"")
    assert isinstance(garbled, Deferred) and garbled.code is None
    rejected = classify("1", 552, "5.2.2 mailbox full")
    assert isinstance(rejected, Rejected) and rejected.enhanced_status == "5.2.2"


def test_greylisting_defers_then_accepts():
    peer = GreylistPeer(delay=60)
    with ScriptedSMTPServer(peer) as server:
        first = _send(server, _batch(3))
        assert _kinds(first) == ["Deferred"] * 3
        assert first[0].code == 451 and "Greylisted" in first[0].reply
        peer.delay = 0
        second = _send(server, _batch(3))
        assert _kinds(second) == ["Accepted"] * 3
        assert server.per_recipient() == {f"user{i}@example.org": 1 for i in (1, 2, 3)}


def test_550_rejects_only_those_recipients():
    with ScriptedSMTPServer(RejectSomePeer({"user2@example.org"})) as server:
        results = _send(server, _batch(3))
        assert server.sessions == 1
    assert _kinds(results) == ["Accepted", "Rejected", "Accepted"]
    assert results[1].code == 550 and results[1].enhanced_status == "5.1.1"
    assert server.per_recipient() == {"user1@example.org": 1, "user3@example.org": 1}


def test_452_per_connection_limit_goes_on_over_a_fresh_connection():
    with ScriptedSMTPServer(RecipientLimitPeer(limit=2)) as server:
        results = _send(server, _batch(5))
    assert _kinds(results) == ["Accepted"] * 5
    assert server.sessions == 3
    assert server.per_recipient() == {f"user{i}@example.org": 1 for i in range(1, 6)}


def test_452_on_a_fresh_connection_defers():
    with ScriptedSMTPServer(RecipientLimitPeer(limit=0)) as server:
        results = _send(server, _batch(2))
    assert _kinds(results) == ["Deferred", "Deferred"]
    assert results[0].code == 452
    assert server.per_recipient() == {}


def test_421_defers_the_rest_of_the_batch_untried():
    peer = ClosingPeer(at=3)
    with ScriptedSMTPServer(peer) as server:
        results = _send(server, _batch(5))
        assert server.sessions == 1  # no reconnect to a server shedding load
        assert server.commands.count("MAIL") == 3
    assert _kinds(results) == ["Accepted", "Accepted", "Deferred", "Deferred", "Deferred"]
    assert [r.code for r in results[2:]] == [421, 421, 421]
    assert "not attempted" in results[3].reply
    assert server.per_recipient() == {"user1@example.org": 1, "user2@example.org": 1}


def test_421_at_the_greeting_defers_everything():
    class BusyPeer(ClosingPeer):
        def greeting(self, session):
            return "421 4.3.2 Too busy"

    with ScriptedSMTPServer(BusyPeer(at=1)) as server:
        backend = SMTPBackend("t", host="127.0.0.1", port=server.port)
        results = backend.send_batch(_batch(2))
        backend.close()
    assert _kinds(results) == ["Deferred", "Deferred"]
    assert "421" in results[0].reply


def test_connection_dropped_in_data_defers_that_message_and_reconnects():
    peer = DropDataPeer(nth=2)
    with ScriptedSMTPServer(peer) as server:
        results = _send(server, _batch(4))
        assert peer.drops == 1
        assert server.sessions == 2
    assert _kinds(results) == ["Accepted", "Deferred", "Accepted", "Accepted"]
    assert results[1].code is None and "connection lost" in results[1].reply
    assert server.per_recipient() == {f"user{i}@example.org": 1 for i in (1, 3, 4)}


def test_stall_past_the_timeout_defers_and_reconnects():
    with ScriptedSMTPServer(StallPeer(count=1)) as server:
        results = _send(server, _batch(3), timeout=0.5)
        assert server.sessions == 2
    assert _kinds(results) == ["Deferred", "Accepted", "Accepted"]
    assert server.per_recipient() == {"user2@example.org": 1, "user3@example.org": 1}


def test_a_server_that_always_stalls_costs_two_timeouts_not_one_per_message():
    with ScriptedSMTPServer(StallPeer(count=100)) as server:
        results = _send(server, _batch(6), timeout=0.3)
        assert server.sessions == 2
    assert _kinds(results) == ["Deferred"] * 6
    assert "not attempted" in results[5].reply
    assert server.per_recipient() == {}


def test_tls_only_server(tmp_path):
    context, cert = self_signed_tls(tmp_path)
    with ScriptedSMTPServer(ssl_context=context) as server:
        trusted = _send(server, _batch(2), security="tls", ca_file=str(cert))
        unverified = _send(server, _batch(1), security="tls", verify_tls=False)
        untrusted = _send(server, _batch(1), security="tls", timeout=2)
        plaintext = _send(server, _batch(1), security="none", timeout=0.5)
    assert _kinds(trusted) == ["Accepted", "Accepted"]
    assert _kinds(unverified) == ["Accepted"]
    assert _kinds(untrusted) == ["Deferred"] and "certificate" in untrusted[0].reply
    assert _kinds(plaintext) == ["Deferred"]
    assert server.per_recipient() == {"user1@example.org": 2, "user2@example.org": 1}


def test_non_ascii_address_without_smtputf8_is_rejected_not_crashed():
    with ScriptedSMTPServer() as server:
        results = _send(server, [_msg("1", "jürgen@example.org"), _msg("2", "a@example.org")])
    assert _kinds(results) == ["Rejected", "Accepted"]
    assert results[0].enhanced_status == "5.6.7"


def test_the_connection_is_kept_across_batches_and_checked_before_reuse():
    with ScriptedSMTPServer() as server:
        assert _kinds(_send(server, _batch(2))) == ["Accepted"] * 2
        assert _kinds(_send(server, _batch(2))) == ["Accepted"] * 2
        assert server.sessions == 1
        assert server.commands.count("NOOP") == 1  # the health check before reuse
        assert server.commands.count("QUIT") == 0


def test_a_pooled_connection_the_server_closed_is_replaced():
    with ScriptedSMTPServer() as server:
        _send(server, _batch(1))
        server.drop_connections()
        assert _kinds(_send(server, _batch(2))) == ["Accepted"] * 2
        assert server.sessions == 2
        assert server.per_recipient() == {"user1@example.org": 2, "user2@example.org": 1}


def test_an_idle_connection_older_than_pool_idle_is_not_reused():
    with ScriptedSMTPServer() as server:
        _send(server, _batch(1), pool_idle=0)
        _send(server, _batch(1), pool_idle=0)
        assert server.sessions == 2
        assert server.commands.count("QUIT") == 1  # the stale one was closed politely


def test_pooling_can_be_turned_off():
    with ScriptedSMTPServer() as server:
        _send(server, _batch(1), pool=False)
        _send(server, _batch(1), pool=False)
        assert server.sessions == 2
        assert POOL.idle_count() == 0


def test_a_broken_connection_is_never_pooled():
    with ScriptedSMTPServer(StallPeer(count=100)) as server:
        _send(server, _batch(1), timeout=0.3)
        assert POOL.idle_count() == 0


def test_a_forked_child_does_not_use_the_parents_connections(monkeypatch):
    with ScriptedSMTPServer() as server:
        _send(server, _batch(1))
        assert POOL.idle_count() == 1
        monkeypatch.setattr("os.getpid", lambda: -1)
        _send(server, _batch(1))
        assert server.sessions == 2


def test_pipelining_is_used_when_offered_and_can_be_turned_off(_pipelining):
    with ScriptedSMTPServer(RejectSomePeer({"user2@example.org"})) as server:
        results = _send(server, _batch(3))
        used = server.pipelined
        assert _kinds(_send(server, _batch(1), pipelining=False)) == ["Accepted"]
        assert server.pipelined == used
    assert _kinds(results) == ["Accepted", "Rejected", "Accepted"]
    assert results[1].enhanced_status == "5.1.1"
    # per message: MAIL and RCPT arrive with the DATA behind them
    assert used == (6 if _pipelining else 0)


def test_pipelining_sends_the_next_envelope_with_the_message_content(_pipelining):
    with ScriptedSMTPServer() as server:
        results = _send(server, _batch(4))
    assert _kinds(results) == ["Accepted"] * 4
    # one round trip per message: messages 2-4 had their MAIL, RCPT and DATA sent ahead
    assert server.after_data == (3 if _pipelining else 0)
    assert server.per_recipient() == {f"user{i}@example.org": 1 for i in range(1, 5)}


class RefuseContentPeer(Peer):
    """Refuses the content of the messages from the given return paths."""

    def __init__(self, refused: set[str], reply: str) -> None:
        self.refused = refused
        self.reply = reply

    def data_end(self, session, data: bytes) -> str:
        if session.mail_from in self.refused:
            return self.reply
        return "250 2.0.0 Queued"


def test_refused_content_with_the_next_envelope_on_its_way(_pipelining):
    peer = RefuseContentPeer({"bounces+1@example.com"}, "554 5.7.1 Message content rejected")
    with ScriptedSMTPServer(peer) as server:
        results = _send(server, _batch(3))
        assert "RSET" not in server.commands or not _pipelining
    assert _kinds(results) == ["Rejected", "Accepted", "Accepted"]
    assert results[0].enhanced_status == "5.7.1"
    assert server.per_recipient() == {"user2@example.org": 1, "user3@example.org": 1}
    assert [a.data for a in server.accepted] == [m.raw for m in _batch(3)[1:]]


def test_421_after_the_content_leaves_the_envelope_sent_ahead_unattempted(_pipelining):
    peer = RefuseContentPeer({"bounces+2@example.com"}, "421 4.3.2 Shutting down")
    with ScriptedSMTPServer(peer) as server:
        results = _send(server, _batch(4))
    assert _kinds(results) == ["Accepted", "Deferred", "Deferred", "Deferred"]
    assert results[1].code == 421
    assert "not attempted" in results[2].reply
    assert server.per_recipient() == {"user1@example.org": 1}


def test_leading_dots_are_doubled_and_restored(_pipelining):
    message = _msg("1", "a@example.org")
    dotted = message.raw.replace(b"body line\r\n", b".hidden\r\n..two\r\n", 1)
    with ScriptedSMTPServer() as server:
        _send(server, [OutgoingMessage(**{**_fields(message), "raw": dotted})])
    assert server.accepted[0].data == dotted


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: x\r\n\r\nbody\r\n",
        b".first line is a dot\r\n\r\n.\r\n..\r\n",
        b"Subject: x\r\n\r\nbare\n.lf\n..two\r\n.",
        b"Subject: x\r\n\r\nno final line end",
        b"",
    ],
)
def test_dot_stuffing_doubles_every_leading_dot_and_terminates_the_data(raw):
    # What RFC 5321 4.5.2 asks, spelled as the line-by-line rule it is.
    lines = raw.split(b"\n")
    expected = b"\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert _dot_stuffed(raw) == expected + b".\r\n"


def _fields(message: OutgoingMessage) -> dict:
    return {name: getattr(message, name) for name in OutgoingMessage.__slots__}

"""The mx backend against a DNS server and SMTP servers on loopback that the test runs."""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller

from mailcenter.delivery import Accepted, Deferred, OutgoingMessage, Rejected, get_backend, mx
from mailcenter.delivery.smtp import POOL
from tests.dnsserver import LocalDNS
from tests.smtppeers import ScriptedSMTPServer, self_signed_tls
from tests.smtpsink import SinkHandler, _free_port


class RecordingHandler(SinkHandler):
    """A sink that also notes, per message, whether it came over TLS and on which session."""

    def __init__(self) -> None:
        super().__init__()
        self.tls: list[bool] = []
        self.sessions: list[int] = []

    async def handle_DATA(self, server, session, envelope):
        self.tls.append(session.ssl is not None)
        self.sessions.append(id(session))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(autouse=True)
def _fresh_caches():
    POOL.clear()
    mx.CACHE.clear()
    yield
    POOL.clear()
    mx.CACHE.clear()


@pytest.fixture
def mx_server(tmp_path):
    """An SMTP server on 127.0.0.1 that offers STARTTLS with a self-signed certificate."""
    context, _cert = self_signed_tls(tmp_path)
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), tls_context=context)
    controller.start()
    yield handler, controller.port
    controller.stop()


RECORDS = {
    # mx1 is preferred but has only an IPv6 address where nothing listens: the backend must
    # move on to mx2.
    ("example.test.", "MX"): ["10 mx1.example.test.", "20 mx2.example.test."],
    ("mx1.example.test.", "AAAA"): ["::1"],
    ("mx2.example.test.", "A"): ["127.0.0.1"],
    ("nomx.test.", "A"): ["127.0.0.1"],
    ("nullmx.test.", "MX"): ["0 ."],
    ("dead.test.", "MX"): ["10 mx.dead.test."],
    ("mx.dead.test.", "AAAA"): ["::1"],
}


def _msg(ref: str, rcpt: str) -> OutgoingMessage:
    raw = f"From: a@example.com\r\nTo: {rcpt}\r\nSubject: t\r\n\r\nbody\r\n".encode()
    return OutgoingMessage(
        ref=ref,
        recipient=rcpt,
        return_path=f"bounces+{ref}@example.com",
        from_email="a@example.com",
        subject="t",
        raw=raw,
    )


def _backend(settings, dns: LocalDNS, port: int, **options):
    settings.MAILCENTER_SENDERS = {
        "direct": {
            "BACKEND": "mx",
            "OPTIONS": {"port": port, "timeout": 3, **dns.resolver_options(), **options},
        }
    }
    return get_backend("direct")


def test_delivers_to_the_next_mx_with_opportunistic_starttls(settings, mx_server):
    handler, port = mx_server
    with LocalDNS(RECORDS) as dns:
        backend = _backend(settings, dns, port)
        with backend:
            results = backend.send_batch(
                [_msg("1", "a@example.test"), _msg("2", "b@nomx.test"), _msg("3", "c@example.test")]
            )
    assert [type(r) for r in results] == [Accepted, Accepted, Accepted]
    assert [r.rcpt_tos for r in handler.received] == [
        ["a@example.test"],
        ["c@example.test"],
        ["b@nomx.test"],
    ]
    assert handler.tls == [True, True, True]
    # one connection per domain: example.test's two messages shared theirs
    assert handler.sessions[0] == handler.sessions[1] != handler.sessions[2]
    assert dns.queries[("nomx.test.", "MX")] == 1 and dns.queries[("nomx.test.", "A")] == 1


def test_domains_that_cannot_receive_fail_at_once(settings, mx_server):
    _handler, port = mx_server
    with LocalDNS(RECORDS) as dns:
        backend = _backend(settings, dns, port)
        results = backend.send_batch(
            [_msg("1", "a@nullmx.test"), _msg("2", "b@nowhere.test"), _msg("3", "c@example.test")]
        )
        backend.close()
    assert isinstance(results[0], Rejected) and results[0].enhanced_status == "5.1.10"
    assert results[0].code == 556
    assert isinstance(results[1], Rejected) and results[1].enhanced_status == "5.1.2"
    assert isinstance(results[2], Accepted)


def test_unreachable_mail_hosts_and_dns_failures_defer(settings, mx_server):
    _handler, port = mx_server
    with LocalDNS(RECORDS) as dns:
        results = _backend(settings, dns, port).send_batch([_msg("1", "a@dead.test")])
    assert isinstance(results[0], Deferred) and "no mail host reachable" in results[0].reply
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        silent = {"nameservers": ["127.0.0.1"], "dns_port": sock.getsockname()[1]}
        settings.MAILCENTER_SENDERS = {
            "direct": {"BACKEND": "mx", "OPTIONS": {**silent, "dns_timeout": 0.3}}
        }
        results = get_backend("direct").send_batch([_msg("1", "a@example.test")])
    assert isinstance(results[0], Deferred) and "DNS lookup failed" in results[0].reply


def test_lookups_are_cached_for_their_ttl(settings, mx_server, monkeypatch):
    _handler, port = mx_server
    clock = [1000.0]
    monkeypatch.setattr(mx, "_now", lambda: clock[0])
    with LocalDNS(RECORDS, ttl=60) as dns:
        backend = _backend(settings, dns, port)
        for _ in range(3):
            assert backend.mx_hosts("example.test") == ["mx1.example.test", "mx2.example.test"]
        assert dns.queries[("example.test.", "MX")] == 1
        clock[0] += 61
        backend.mx_hosts("example.test")
        assert dns.queries[("example.test.", "MX")] == 2


def test_tls_required_refuses_a_server_without_starttls(settings):
    with ScriptedSMTPServer() as plain, LocalDNS(RECORDS) as dns:
        backend = _backend(settings, dns, plain.port, tls="required")
        results = backend.send_batch([_msg("1", "a@nomx.test")])
        assert isinstance(results[0], Deferred)
        assert plain.per_recipient() == {}
        backend = _backend(settings, dns, plain.port, tls="opportunistic")
        assert isinstance(backend.send_batch([_msg("1", "a@nomx.test")])[0], Accepted)
        assert plain.per_recipient() == {"a@nomx.test": 1}

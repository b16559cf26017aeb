"""DNS checks of a sending domain against a real DNS server this test runs on loopback.

``LocalDNS`` answers TXT queries from a dict the test fills in; the checks reach it through
``MAILCENTER_DNS_RESOLVER``, the same setting an operator would use.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest

from mailcenter.domains import checks, keys, services
from mailcenter.models import SendingDomain


class LocalDNS:
    """A tiny authoritative UDP DNS server on 127.0.0.1 (dnspython's message API).

    ``txt[name]`` is a list of records, each a str (split into 255-byte strings here) or a
    list of strings as they should go on the wire. Unknown names get NXDOMAIN; names with
    no TXT get an empty answer. Bounded: it serves until ``stop()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.txt: dict[str, list[str | list[str]]] = {}
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = f"{host}:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> LocalDNS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _answer(self, data: bytes) -> bytes:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append(name)
            if name not in self.txt:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            if question.rdtype != dns.rdatatype.TXT or not self.txt[name]:
                continue
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            for record in self.txt[name]:
                strings = keys.split_txt(record) if isinstance(record, str) else record
                rrset.add(
                    dns.rdtypes.ANY.TXT.TXT(
                        dns.rdataclass.IN, dns.rdatatype.TXT, [s.encode() for s in strings]
                    ),
                    ttl=60,
                )
            response.answer.append(rrset)
        return response.to_wire()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(data), peer)
            except Exception:  # noqa: S112 - a malformed query must not stop the server
                continue


@pytest.fixture
def local_dns(settings):
    server = LocalDNS().start()
    settings.MAILCENTER_DNS_RESOLVER = server.address
    settings.MAILCENTER_DNS_TIMEOUT = 2
    yield server
    server.stop()


@pytest.fixture
def domain(db):
    return services.sending_domain_create("news.example.com")


def _by_name(report, name):
    return next(c for c in report.checks if c.name == name)


def test_resolver_comes_from_the_setting(settings):
    settings.MAILCENTER_DNS_RESOLVER = "127.0.0.1:5353, [::1]:5300"
    resolver = checks.make_resolver()
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [
        ("127.0.0.1", 5353),
        ("::1", 5300),
    ]


def test_everything_published_is_ok(domain, local_dns):
    rsa = services.dkim_key_generate(domain.pk, keys.RSA, "s1")
    ed = services.dkim_key_generate(domain.pk, keys.ED25519, "s2")
    # The RSA record is longer than 255 bytes: published as two strings, as in a zone file.
    rsa_strings = keys.split_txt(keys.record_value(rsa.algorithm, rsa.public_key))
    assert len(rsa_strings) == 2
    assert all(len(s.encode()) <= 255 for s in rsa_strings)
    local_dns.txt["s1._domainkey.news.example.com"] = [rsa_strings]
    local_dns.txt["s2._domainkey.news.example.com"] = [
        keys.record_value(ed.algorithm, ed.public_key)
    ]
    local_dns.txt["news.example.com"] = [
        "google-site-verification=abc",
        "v=spf1 ip4:203.0.113.10 include:_spf.provider.example -all",
    ]
    local_dns.txt["_dmarc.news.example.com"] = ["v=DMARC1; p=reject; rua=mailto:d@example.com"]
    report = checks.sending_domain_check(domain)
    assert [c.status for c in report.checks] == ["ok"] * 4, [c.summary for c in report.checks]
    assert report.ok
    assert "ip4:203.0.113.10" in _by_name(report, "SPF").summary
    assert "reject" in _by_name(report, "DMARC").summary
    assert "s1._domainkey.news.example.com" in local_dns.queries


def test_missing_records_are_explained(domain, local_dns):
    services.dkim_key_generate(domain.pk, keys.RSA, "s1")
    local_dns.txt["news.example.com"] = ["some other text"]
    report = checks.sending_domain_check(domain)
    dkim, spf, dmarc = report.checks
    assert dkim.status == spf.status == dmarc.status == "error"
    assert "no DKIM record at s1._domainkey.news.example.com" in dkim.summary
    assert dkim.fix.startswith("v=DKIM1; k=rsa; p=")
    assert "has no SPF record" in spf.summary
    assert "no DMARC record" in dmarc.summary
    assert dmarc.fix.startswith("v=DMARC1; p=none")
    assert not report.ok


def test_a_stale_or_wrong_dkim_record_is_a_mismatch(domain, local_dns):
    key = services.dkim_key_generate(domain.pk, keys.RSA, "s1")
    other = keys.generate(keys.RSA)
    local_dns.txt["s1._domainkey.news.example.com"] = [
        keys.record_value(keys.RSA, other.public_key)
    ]
    check = checks.check_dkim(key, checks.make_resolver())
    assert check.status == "error"
    assert "different public key" in check.summary

    local_dns.txt["s1._domainkey.news.example.com"] = ["v=DKIM1; k=rsa; p="]
    assert "revoked" in checks.check_dkim(key, checks.make_resolver()).summary

    local_dns.txt["s1._domainkey.news.example.com"] = [
        keys.record_value(keys.ED25519, key.public_key)
    ]
    assert "ed25519 key" in checks.check_dkim(key, checks.make_resolver()).summary


@pytest.mark.parametrize(
    ("records", "status", "words"),
    [
        (["v=spf1 -all"], "error", "authorises no server at all"),
        (["v=spf1 +all"], "error", "every server on the internet"),
        (["v=spf1 mx -all", "v=spf1 include:x.example ~all"], "error", "has 2 SPF records"),
        (["v=spf1 a mx"], "warning", "does not end in"),
        (["v=spf1 redirect=_spf.example.com"], "ok", "redirect=_spf.example.com"),
        (
            ["v=spf1 " + " ".join(f"include:s{i}.example" for i in range(11)) + " -all"],
            "error",
            "11 DNS lookups",
        ),
    ],
)
def test_spf_findings(local_dns, records, status, words):
    local_dns.txt["example.com"] = records
    check = checks.check_spf("example.com", checks.make_resolver())
    assert check.status == status
    assert words in check.summary


def test_dmarc_policy_none_and_inheritance(local_dns):
    local_dns.txt["_dmarc.example.com"] = ["v=DMARC1; p=none; sp=quarantine"]
    resolver = checks.make_resolver()
    own = checks.check_dmarc("example.com", resolver)
    assert own.status == "warning"
    assert "only report" in own.summary
    inherited = checks.check_dmarc("news.example.com", resolver)
    assert inherited.status == "ok"
    assert "quarantine" in inherited.summary
    assert "inherited from _dmarc.example.com" in inherited.summary

    local_dns.txt["_dmarc.example.com"] = ["v=DMARC1; rua=mailto:x@example.com"]
    assert "no valid policy" in checks.check_dmarc("example.com", resolver).summary


def test_an_unreachable_resolver_is_a_finding_not_a_crash(domain, settings):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound and never answering
        settings.MAILCENTER_DNS_RESOLVER = f"127.0.0.1:{silent.getsockname()[1]}"
        settings.MAILCENTER_DNS_TIMEOUT = 0.3
        report = checks.sending_domain_check(domain)
    assert all(c.status == "error" for c in report.checks)
    assert "DNS did not answer" in report.checks[-1].summary


def test_domain_page_runs_the_checks_on_request(auth_client, domain, local_dns):
    services.dkim_key_generate(domain.pk, keys.RSA, "s1")
    page = auth_client.get(f"/settings/domains/{domain.pk}/")
    assert page.status_code == 200
    assert local_dns.queries == []  # a plain visit asks DNS nothing
    local_dns.txt["news.example.com"] = ["v=spf1 -all"]
    page = auth_client.get(f"/settings/domains/{domain.pk}/?check=1")
    body = page.content.decode()
    assert "There is no DKIM record at s1._domainkey.news.example.com" in body
    assert "authorises no server at all" in body
    assert "has no DMARC record" in body


def test_domain_without_key_says_so(db, local_dns):
    domain = SendingDomain.objects.create(domain="example.net")
    report = checks.sending_domain_check(domain)
    assert "has no DKIM key yet" in report.checks[0].summary

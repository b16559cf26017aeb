"""Direct delivery: look up each recipient domain's MX hosts and talk to them.

Options: ``port`` (25; other values are for tests and for networks that redirect port 25),
``timeout`` (30 s), ``local_hostname`` (the EHLO name: set it to the host name your IP's
reverse DNS gives, or receivers will distrust you), ``tls`` (``opportunistic``: STARTTLS
when offered, plaintext when it is not or fails, as MTAs do; ``required``: never send in
plaintext; ``none``), ``verify_tls`` (false by default: opportunistic TLS between MTAs
does not verify certificates, RFC 7435), ``nameservers`` (list of resolver addresses; the
system's when empty), ``dns_port`` (53), ``dns_timeout`` (5 s), ``pool`` / ``pool_idle``
(as for ``smtp``).

Per domain: MX records in preference order (RFC 5321 §5.1), or the domain's own A/AAAA
addresses when it has no MX; a null MX (RFC 7505) or a domain that does not exist fails
the messages at once; a DNS failure defers them. Each MX host's addresses are tried in
turn until one accepts a connection, then that host's connection carries all the
domain's messages in the batch (through the ``smtp`` backend's session logic, so replies,
reconnects and 421 handling are the same). Lookups are cached for their TTL.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver

from mailcenter.delivery.base import (
    BaseBackend,
    Deferred,
    DeliveryError,
    OutgoingMessage,
    Rejected,
    Result,
)
from mailcenter.delivery.smtp import SMTPBackend

# Upper bound on a cached answer's life, whatever its TTL says.
MAX_CACHE_SECONDS = 3600
CACHE_ENTRIES = 10_000
# MX hosts tried per domain: enough for any real setup, bounded for a hostile one.
MAX_MX_HOSTS = 5

_now = time.monotonic


class PermanentDNSError(Exception):
    """The domain cannot receive mail (NXDOMAIN, null MX, no address at all)."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.enhanced = enhanced


class TemporaryDNSError(Exception):
    """The lookup failed for now (timeout, SERVFAIL): try again later."""


class DNSCache:
    """Answers by (resolver, name, type), each kept for its TTL (capped), LRU-bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if _now() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: tuple, value: Any, ttl: float) -> None:
        with self._lock:
            self._entries[key] = (_now() + min(ttl, MAX_CACHE_SECONDS), value)
            self._entries.move_to_end(key)
            while len(self._entries) > CACHE_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = DNSCache()


class MXBackend(BaseBackend):
    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        self.port = int(options.get("port", 25))
        self.tls = options.get("tls", "opportunistic")
        if self.tls not in {"opportunistic", "required", "none"}:
            raise DeliveryError(f"{alias}: tls must be opportunistic, required or none")
        self.nameservers: list[str] = list(options.get("nameservers") or [])
        self.dns_port = int(options.get("dns_port", 53))
        self.dns_timeout = float(options.get("dns_timeout", 5))
        self._resolver: dns.resolver.Resolver | None = None

    # -- DNS -----------------------------------------------------------------------------

    @property
    def resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            resolver = dns.resolver.Resolver(configure=not self.nameservers)
            if self.nameservers:
                resolver.nameservers = self.nameservers
                resolver.port = self.dns_port
            resolver.lifetime = self.dns_timeout
            self._resolver = resolver
        return self._resolver

    def _query(self, name: str, rdtype: str) -> list[Any]:
        """Records of ``name``; [] when it has none of that type. Raises PermanentDNSError
        on NXDOMAIN and TemporaryDNSError when no answer could be had."""
        key = (tuple(self.nameservers), self.dns_port, name.lower(), rdtype)
        cached = CACHE.get(key)
        if cached is not None:
            return cached
        try:
            answer = self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise PermanentDNSError(550, "5.1.2", f"{name}: no such domain") from None
        except dns.resolver.NoAnswer:
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise TemporaryDNSError(f"{name} {rdtype}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise TemporaryDNSError(f"{name} {rdtype}: {exc}") from exc
        records = list(answer)
        CACHE.put(key, records, answer.rrset.ttl if answer.rrset is not None else 0)
        return records

    def mx_hosts(self, domain: str) -> list[str]:
        """The hosts to try for ``domain``, best first."""
        records = self._query(domain, "MX")
        if not records:
            return [domain]  # implicit MX: the domain's own address (RFC 5321 §5.1)
        if len(records) == 1 and records[0].exchange.to_text() == ".":
            raise PermanentDNSError(556, "5.1.10", f"{domain} accepts no mail (null MX)")
        ordered = sorted(records, key=lambda r: (r.preference, r.exchange.to_text()))
        return [r.exchange.to_text(omit_final_dot=True) for r in ordered][:MAX_MX_HOSTS]

    def addresses(self, host: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                found += [r.to_text() for r in self._query(host, rdtype)]
            except PermanentDNSError:
                return []
        return found

    # -- sending -------------------------------------------------------------------------

    def send_batch(self, messages: list[OutgoingMessage]) -> list[Result]:
        """Group by recipient domain and deliver each group to its MX; results in order."""
        by_domain: dict[str, list[OutgoingMessage]] = {}
        for message in messages:
            domain = message.recipient.rpartition("@")[2].lower().rstrip(".")
            by_domain.setdefault(domain, []).append(message)
        results: dict[str, Result] = {}
        for domain, group in by_domain.items():
            for result in self._deliver_domain(domain, group):
                results[result.ref] = result
        return [results[m.ref] for m in messages]

    def _deliver_domain(self, domain: str, messages: list[OutgoingMessage]) -> list[Result]:
        try:
            hosts = self.mx_hosts(domain)
            targets = [(host, address) for host in hosts for address in self.addresses(host)]
            if not targets:
                raise PermanentDNSError(550, "5.1.2", f"{domain}: no address for its mail hosts")
        except PermanentDNSError as exc:
            return [
                Rejected(
                    ref=m.ref,
                    code=exc.code,
                    reply=f"{exc.enhanced} {exc}",
                    enhanced_status=exc.enhanced,
                )
                for m in messages
            ]
        except TemporaryDNSError as exc:
            return [
                Deferred(ref=m.ref, code=None, reply=f"DNS lookup failed: {exc}") for m in messages
            ]
        failures: list[str] = []
        for host, address in targets:
            session = SMTPBackend(self.alias, **self._session_options(host, address))
            try:
                session.open()
            except DeliveryError as exc:
                failures.append(f"{host} [{address}]: {exc.__cause__ or exc}")
                continue  # the next address, then the next MX
            try:
                return session.send_batch(messages)
            finally:
                session.close()
        reply = "no mail host reachable: " + "; ".join(failures)
        return [Deferred(ref=m.ref, code=None, reply=reply[:1000]) for m in messages]

    def _session_options(self, host: str, address: str) -> dict[str, Any]:
        security = {"opportunistic": "opportunistic", "required": "starttls", "none": "none"}
        options = {
            key: self.options[key]
            for key in ("timeout", "local_hostname", "pool", "pool_idle", "ca_file")
            if key in self.options
        }
        return {
            **options,
            "host": address,
            "port": self.port,
            "server_name": host,
            "security": security[self.tls],
            "verify_tls": self.options.get("verify_tls", False),
        }

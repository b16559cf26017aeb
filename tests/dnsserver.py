"""An authoritative DNS server on 127.0.0.1 (UDP, in a thread) that a test controls.

Built on dnspython's message classes: ``records`` maps (name, type) to the record texts
to answer (``{("example.test.", "MX"): ["10 mx1.example.test."]}``). A name with no
record of any type answers NXDOMAIN, a known name without the asked type answers NOERROR
with an empty answer (NODATA), as a real server does. Every question is counted.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class LocalDNS:
    def __init__(self, records: dict[tuple[str, str], list[str]], ttl: int = 300) -> None:
        self.records = {(name.lower(), rdtype.upper()): v for (name, rdtype), v in records.items()}
        self.ttl = ttl
        self.queries: Counter[tuple[str, str]] = Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LocalDNS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def resolver_options(self) -> dict:
        return {"nameservers": ["127.0.0.1"], "dns_port": self.port, "dns_timeout": 2}

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            self._sock.sendto(self._answer(query).to_wire(), addr)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        texts = self.records.get((name, rdtype))
        if texts:
            response.answer.append(
                dns.rrset.from_text(name, self.ttl, dns.rdataclass.IN, rdtype, *texts)
            )
        elif not any(known == name for known, _type in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

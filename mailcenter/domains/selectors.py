"""Reads for sending domains: the list, and the DNS record each key needs."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from mailcenter.domains import keys
from mailcenter.models import DkimKey, SendingDomain


@dataclass(frozen=True)
class DnsRecord:
    """A TXT record to publish, in the forms DNS control panels and zone files want."""

    name: str
    value: str
    strings: list[str]
    zone_line: str


def sending_domain_list() -> QuerySet[SendingDomain]:
    return SendingDomain.objects.annotate(
        key_count=Count("keys"), active_key_count=Count("keys", filter=Q(keys__active=True))
    ).order_by("domain")


def dkim_key_record(key: DkimKey) -> DnsRecord:
    """The DKIM TXT record for ``key`` (name, one-line value, 255-byte strings)."""
    domain = key.domain.domain
    value = keys.record_value(key.algorithm, key.public_key)
    return DnsRecord(
        name=keys.record_name(key.selector, domain),
        value=value,
        strings=keys.split_txt(value),
        zone_line=keys.zone_line(key.selector, domain, key.algorithm, key.public_key),
    )

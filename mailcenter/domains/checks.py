"""DNS checks for a sending domain: DKIM records, SPF, DMARC, explained in plain words.

The resolver is whatever ``MAILCENTER_DNS_RESOLVER`` names (the system's by default), or one
passed in; the tests point it at a DNS server they run on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.nameserver
import dns.resolver
from django.utils.translation import gettext as _

from mailcenter.domains import conf, keys
from mailcenter.models import DkimKey, SendingDomain

OK = "ok"
WARNING = "warning"
ERROR = "error"

# SPF terms that name servers allowed to send ("authorise something").
_AUTHORISING = ("a", "mx", "ip4", "ip6", "include", "exists", "ptr")
# RFC 7208 4.6.4: at most 10 terms that cost a DNS lookup, or SPF fails with permerror.
_LOOKUP_TERMS = ("a", "mx", "include", "exists", "ptr", "redirect")
SPF_LOOKUP_LIMIT = 10


class LookupFailed(Exception):
    """DNS could not be asked (timeout, no server answered): nothing is known."""


@dataclass
class Check:
    """One finding: ``status`` is ok / warning / error, ``summary`` says it in plain words,
    ``found`` lists the records as DNS returned them, ``fix`` what to publish instead."""

    name: str
    status: str
    summary: str
    found: list[str] = field(default_factory=list)
    fix: str = ""


@dataclass
class DomainReport:
    domain: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.status == OK for check in self.checks)


def make_resolver(
    address: str | None = None, timeout: float | None = None
) -> dns.resolver.Resolver:
    """A resolver for ``host[:port][,host[:port]...]`` (``[v6]:port`` for IPv6), or the
    system's when the address is empty. Defaults come from the settings."""
    address = conf.dns_resolver_address() if address is None else address
    timeout = conf.dns_timeout() if timeout is None else timeout
    if not address.strip():
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        servers = []
        for item in address.split(","):
            item = item.strip()
            host, port = item, 53
            if item.startswith("["):
                host, _sep, rest = item[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else 53
            elif item.count(":") == 1:
                host, _sep, port_text = item.partition(":")
                port = int(port_text)
            servers.append(dns.nameserver.Do53Nameserver(host, port))
        resolver.nameservers = servers
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None  # a check must see what DNS says now
    return resolver


def txt_records(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    """The TXT records at ``name``, each with its strings joined; [] when there are none."""
    try:
        answer = resolver.resolve(name, "TXT", raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise LookupFailed(
            _("DNS did not answer for %(name)s (%(error)s). Try again in a minute.")
            % {"name": name, "error": exc.__class__.__name__}
        ) from None
    except dns.exception.DNSException as exc:
        raise LookupFailed(
            _("DNS lookup for %(name)s failed: %(error)s") % {"name": name, "error": exc}
        ) from None
    if answer.rrset is None:
        return []
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]


def _tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


def check_dkim(key: DkimKey, resolver: dns.resolver.Resolver) -> Check:
    """Is the key's TXT record published, and does it hold this key?"""
    domain = key.domain.domain
    name = keys.record_name(key.selector, domain)
    title = _("DKIM key %(selector)s") % {"selector": key.selector}
    expected = keys.record_value(key.algorithm, key.public_key)
    try:
        records = txt_records(resolver, name)
    except LookupFailed as exc:
        return Check(title, ERROR, str(exc))
    dkim = [r for r in records if _tags(r).get("v", "").upper() == "DKIM1" or "p" in _tags(r)]
    if not dkim:
        return Check(
            title,
            ERROR,
            _(
                "There is no DKIM record at %(name)s. Publish the TXT record shown for this key; "
                "until it is there, receivers cannot check the signature and treat the mail as "
                "unsigned."
            )
            % {"name": name},
            records,
            expected,
        )
    if len(dkim) > 1:
        return Check(
            title,
            ERROR,
            _("%(name)s has %(count)s DKIM records; keep exactly one, the one shown for this key.")
            % {"name": name, "count": len(dkim)},
            dkim,
            expected,
        )
    tags = _tags(dkim[0])
    published = "".join(tags.get("p", "").split())
    kind = tags.get("k", "rsa").lower()
    wanted_kind = "ed25519" if key.algorithm == keys.ED25519 else "rsa"
    if not published:
        summary = _(
            "The record at %(name)s is revoked (its p= is empty): receivers reject signatures "
            "made with this selector."
        ) % {"name": name}
    elif kind != wanted_kind:
        summary = _(
            "The record at %(name)s is for a %(found)s key, but this key is %(wanted)s."
        ) % {"name": name, "found": kind, "wanted": wanted_kind}
    elif published != key.public_key:
        summary = _(
            "The record at %(name)s holds a different public key (an old one, or a copy "
            "error): signatures made with this key will fail. Replace it with the record shown."
        ) % {"name": name}
    else:
        return Check(
            title, OK, _("Published at %(name)s and matches this key.") % {"name": name}, dkim
        )
    return Check(title, ERROR, summary, dkim, expected)


def _spf_terms(record: str) -> list[str]:
    return record.split()[1:]


def check_spf(domain: str, resolver: dns.resolver.Resolver) -> Check:
    """Exactly one v=spf1 record, which authorises some servers and ends in a policy."""
    title = "SPF"
    try:
        records = txt_records(resolver, domain)
    except LookupFailed as exc:
        return Check(title, ERROR, str(exc))
    spf = [r for r in records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    example = "v=spf1 include:_spf.your-provider.example ip4:203.0.113.10 ~all"
    if not spf:
        return Check(
            title,
            ERROR,
            _(
                "%(domain)s has no SPF record, so receivers cannot tell which servers may send "
                "its mail. Publish one TXT record that lists your sending servers or provider."
            )
            % {"domain": domain},
            records,
            example,
        )
    if len(spf) > 1:
        return Check(
            title,
            ERROR,
            _(
                "%(domain)s has %(count)s SPF records. Only one is allowed: with more, receivers "
                "treat SPF as broken (permerror). Merge them into a single record."
            )
            % {"domain": domain, "count": len(spf)},
            spf,
        )
    terms = [t.lower() for t in _spf_terms(spf[0])]

    def mechanism(term: str) -> str:
        term = term.lstrip("+-~?")
        return term.split(":", 1)[0].split("/", 1)[0].split("=", 1)[0]

    authorising = [t for t in terms if mechanism(t) in _AUTHORISING and not t.startswith("-")]
    redirect = [t for t in terms if t.startswith("redirect=")]
    all_terms = [t for t in terms if mechanism(t) == "all"]
    lookups = sum(1 for t in terms if mechanism(t) in _LOOKUP_TERMS)
    if any(t in ("all", "+all") for t in all_terms):
        return Check(
            title,
            ERROR,
            _(
                "The SPF record ends in “+all”: it authorises every server on the internet to "
                "send as %(domain)s, which makes it worthless. End it with “~all” or “-all”."
            )
            % {"domain": domain},
            spf,
        )
    if not authorising and not redirect:
        return Check(
            title,
            ERROR,
            _(
                "The SPF record authorises no server at all, so every message from %(domain)s "
                "fails SPF. Add your sending servers (ip4:/ip6:) or your provider (include:)."
            )
            % {"domain": domain},
            spf,
        )
    if lookups > SPF_LOOKUP_LIMIT:
        return Check(
            title,
            ERROR,
            _(
                "The SPF record needs %(count)s DNS lookups; SPF allows at most 10 and fails "
                "beyond that. Replace some include: terms with ip4:/ip6: ranges."
            )
            % {"count": lookups},
            spf,
        )
    if not all_terms and not redirect:
        return Check(
            title,
            WARNING,
            _(
                "The SPF record authorises %(terms)s but does not end in “~all” or “-all”, so "
                "mail from other servers is treated as neutral rather than failing."
            )
            % {"terms": ", ".join(authorising)},
            spf,
        )
    return Check(
        title,
        OK,
        _("One SPF record; it authorises %(terms)s.")
        % {"terms": ", ".join(authorising or redirect)},
        spf,
    )


def check_dmarc(domain: str, resolver: dns.resolver.Resolver) -> Check:
    """A _dmarc record with a policy; a parent domain's record applies to subdomains."""
    title = "DMARC"
    example = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"
    labels = domain.split(".")
    # The organisational domain is approximated by walking up to the last two labels.
    for index in range(len(labels) - 1):
        candidate = ".".join(labels[index:])
        name = f"_dmarc.{candidate}"
        try:
            records = txt_records(resolver, name)
        except LookupFailed as exc:
            return Check(title, ERROR, str(exc))
        dmarc = [r for r in records if _tags(r).get("v", "").upper() == "DMARC1"]
        if not dmarc:
            continue
        if len(dmarc) > 1:
            return Check(
                title,
                ERROR,
                _("%(name)s has %(count)s DMARC records; receivers ignore all of them. Keep one.")
                % {"name": name, "count": len(dmarc)},
                dmarc,
            )
        tags = _tags(dmarc[0])
        policy = tags.get("sp" if index else "p", tags.get("p", "")).lower()
        where = "" if index == 0 else _(" (inherited from %(name)s)") % {"name": name}
        if policy not in ("none", "quarantine", "reject"):
            return Check(
                title,
                ERROR,
                _(
                    "The DMARC record at %(name)s has no valid policy: it needs p=none, "
                    "p=quarantine or p=reject, and receivers ignore it without one."
                )
                % {"name": name},
                dmarc,
                example,
            )
        if policy == "none":
            return Check(
                title,
                WARNING,
                _(
                    "DMARC policy is “none”%(where)s: receivers only report, and nothing stops "
                    "others from sending as %(domain)s. Move to p=quarantine, then p=reject, "
                    "once the reports show your own mail passes."
                )
                % {"where": where, "domain": domain},
                dmarc,
            )
        return Check(
            title,
            OK,
            _("DMARC policy is “%(policy)s”%(where)s.") % {"policy": policy, "where": where},
            dmarc,
        )
    return Check(
        title,
        ERROR,
        _(
            "%(domain)s has no DMARC record (_dmarc.%(domain)s). Gmail and Yahoo require one "
            "from bulk senders. Start with the record below to receive reports."
        )
        % {"domain": domain},
        [],
        example,
    )


def sending_domain_check(
    domain: SendingDomain, resolver: dns.resolver.Resolver | None = None
) -> DomainReport:
    """Check every key's DKIM record, then SPF and DMARC. Never raises for DNS trouble:
    a lookup that fails is a finding."""
    resolver = resolver or make_resolver()
    checks = [check_dkim(key, resolver) for key in domain.keys.select_related("domain")]
    if not checks:
        checks.append(
            Check(
                "DKIM",
                ERROR,
                _("%(domain)s has no DKIM key yet: generate one, then publish its record.")
                % {"domain": domain.domain},
            )
        )
    checks.append(check_spf(domain.domain, resolver))
    checks.append(check_dmarc(domain.domain, resolver))
    return DomainReport(domain.domain, checks)

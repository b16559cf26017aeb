"""Tell machine opens and clicks from people's. Pure: request facts in, a reason out.

No network lookups: everything is decided from the request itself and from when the
message was delivered. The reasons, in the order they are checked:

- ``head``: a HEAD request. Browsers and mail clients GET; link checkers and scanners
  HEAD to see where a link goes.
- ``bot``: a user agent that names a crawler, an HTTP library or a mail security gateway
  (Barracuda, Proofpoint, Mimecast ...), or no user agent at all. Headless Chrome is not
  on the list: people's tools use it too, and scanners that use it are caught by timing.
- ``apple_mpp``: Apple Mail Privacy Protection fetches every image of a message through
  Apple's proxy when the message arrives, whether or not anyone reads it. Its requests
  carry the bare user agent ``Mozilla/5.0`` and come from Apple's 17.0.0.0/8 network
  (Apple publishes the relay egress ranges; without a lookup we use its own /8).
- ``scanner``: a click before anyone could have read the message — within
  ``conf.scanner_seconds()`` of delivery and with no human open before it. Gateways
  (Microsoft Defender Safe Links, Proofpoint URL Defense ...) follow every link at
  delivery time, often from a browser-like user agent, so the timing is what gives
  them away.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

REASON_HEAD = "head"
REASON_BOT = "bot"
REASON_APPLE_MPP = "apple_mpp"
REASON_SCANNER = "scanner"

_BOTS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|curl/|wget/|python-requests|python-urllib|aiohttp|"
    r"httpx|go-http-client|java/|okhttp|libwww|http_request|phantomjs|"
    r"barracuda|proofpoint|mimecast|symantec|messagelabs|trend ?micro|zscaler|"
    r"fireeye|forcepoint|sophos|cisco|ironport|paloalto|checkpoint|appriver|"
    r"safelinks|linkscanner|urldefense|office protocol discovery|skypeuripreview|"
    r"bingpreview|linkpreview|urlpreview|facebookexternalhit|whatsapp",
    re.IGNORECASE,
)
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")


def machine_reason(
    kind: str,
    *,
    method: str = "GET",
    user_agent: str = "",
    ip: str | None = None,
    seconds_since_sent: float | None = None,
    human_open_before: bool = False,
    scanner_seconds: float = 0,
) -> str:
    """Return why this open or click is a machine's, or "" when it looks like a person."""
    if method.upper() == "HEAD":
        return REASON_HEAD
    agent = user_agent.strip()
    if _is_bot(agent):
        return REASON_BOT
    if kind == "open" and (agent == "Mozilla/5.0" or _is_apple(ip)):
        return REASON_APPLE_MPP
    if (
        kind == "click"
        and seconds_since_sent is not None
        and seconds_since_sent < scanner_seconds
        and not human_open_before
    ):
        return REASON_SCANNER
    return ""


# A campaign's hits come from a few hundred distinct user agents and networks: the writer
# classifies each once instead of running the patterns for every hit of a storm.
@lru_cache(maxsize=4096)
def _is_bot(agent: str) -> bool:
    return not agent or _BOTS.search(agent) is not None


@lru_cache(maxsize=4096)
def _is_apple(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in _APPLE_NETWORK
    except ValueError:
        return False


@lru_cache(maxsize=4096)
def truncate_ip(ip: str | None, mode: str) -> str | None:
    """Apply the IP privacy setting: ``full`` keeps it, ``truncated`` keeps the network
    (/24 for IPv4, /48 for IPv6: enough for a country, not for a household), ``none``
    keeps nothing."""
    if not ip or mode == "none":
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if mode == "full":
        return str(address)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)

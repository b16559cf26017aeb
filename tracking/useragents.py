"""Mail client and device from a user agent, simply: enough for a report's breakdown.
Pure. Image proxies (Gmail, Yahoo) hide the reader's device; they are named as the client."""

from __future__ import annotations

import re
from functools import lru_cache

_CLIENTS = [
    ("Gmail", re.compile(r"GoogleImageProxy|ggpht\.com", re.I)),
    ("Yahoo Mail", re.compile(r"YahooMailProxy", re.I)),
    ("Outlook", re.compile(r"Outlook|ms-office|Microsoft Office|MSOffice", re.I)),
    ("Thunderbird", re.compile(r"Thunderbird", re.I)),
    ("Edge", re.compile(r"Edg(e|A|iOS)?/", re.I)),
    ("Firefox", re.compile(r"Firefox/|FxiOS/", re.I)),
    ("Chrome", re.compile(r"Chrome/|CriOS/", re.I)),
    ("Safari", re.compile(r"Version/[\d.]+.*Safari/", re.I)),
    # WebKit without a browser name: Apple Mail on macOS and iOS loads images this way.
    ("Apple Mail", re.compile(r"AppleWebKit/(?!.*(Safari|Chrome)/)", re.I)),
]
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)", re.I)
_MOBILE = re.compile(r"iPhone|iPod|Mobile|Android", re.I)
_DESKTOP = re.compile(r"Windows|Macintosh|Mac OS X|X11|Linux|CrOS", re.I)
_PROXIES = frozenset({"Gmail", "Yahoo Mail"})


@lru_cache(maxsize=4096)  # a few hundred distinct agents make up a campaign's opens
def parse_user_agent(user_agent: str) -> tuple[str, str]:
    """Return (client, device): device is Mobile, Tablet, Desktop or Unknown."""
    agent = user_agent or ""
    client = next((name for name, pattern in _CLIENTS if pattern.search(agent)), "Other")
    if client in _PROXIES:
        return client, "Unknown"
    if _TABLET.search(agent):
        device = "Tablet"
    elif _MOBILE.search(agent):
        device = "Mobile"
    elif _DESKTOP.search(agent):
        device = "Desktop"
    else:
        device = "Unknown"
    return client, device

"""The end of the one-campaign story, shared by the end-to-end and integration tests:
parse what the SMTP server received, follow each message's links against a live server and
compare the report with what was done."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

from campaigns.models import Campaign, Message
from contacts.models import Contact
from tests.smtpsink import Received
from tracking.queue import hits_drain
from tracking.selectors import campaign_stats

URL = re.compile(r'https?://[^\s"<>]+')
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, dict, bytes]:
    assert url.startswith(("http://", "https://"))
    # A person's browser: an HTTP library's own user agent is flagged as a machine.
    request = urllib.request.Request(  # noqa: S310
        url, method=method, data=data, headers={"User-Agent": BROWSER}
    )
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def check_messages(received: list[Received], expected: dict[str, dict]) -> dict[str, EmailMessage]:
    """Every recipient got exactly one message with the contract's headers and both parts."""
    by_rcpt: dict[str, EmailMessage] = {}
    for item in received:
        assert len(item.rcpt_tos) == 1
        rcpt = item.rcpt_tos[0]
        assert rcpt not in by_rcpt, f"{rcpt} received twice"
        assert item.mail_from.startswith("bounces+")
        by_rcpt[rcpt] = item.parsed()
    assert set(by_rcpt) == set(expected)
    ids = set()
    for rcpt, msg in by_rcpt.items():
        person = expected[rcpt]
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "<http" in msg["List-Unsubscribe"] and "mailto:" in msg["List-Unsubscribe"]
        ids.add(msg["Message-ID"])
        html = msg.get_body(preferencelist=("html",)).get_content()
        text = msg.get_body(preferencelist=("plain",)).get_content()
        greeting = f"Hi {person['first_name'] or 'friend'}"
        assert greeting in html and greeting in text
        if person.get("city"):
            assert person["city"] in html
    assert len(ids) == len(by_rcpt)
    return by_rcpt


def follow_links(
    campaign: Campaign, by_rcpt: dict[str, EmailMessage], base_url: str, unsubscribe: str
) -> dict[str, int]:
    """Open every message twice, click every tracked link once, unsubscribe one person."""
    expected = {"opens_total": 0, "clicks_total": 0, "opens_unique": 0, "clicks_unique": 0}
    for msg in by_rcpt.values():
        html = msg.get_body(preferencelist=("html",)).get_content()
        urls = [u.replace("&amp;", "&") for u in URL.findall(html)]
        pixel = [u for u in urls if "/t/o/" in u]
        clicks = [u for u in urls if "/t/c/" in u]
        assert all(u.startswith(base_url) for u in pixel + clicks)
        assert len(pixel) == 1
        for _ in range(2):
            status, headers, body = fetch(pixel[0])
            assert status == 200 and headers["Content-Type"] == "image/gif"
        expected["opens_total"] += 2
        expected["opens_unique"] += 1
        targets = [link.url for link in campaign.links.order_by("index")]
        for index, url in enumerate(clicks):
            status, headers, _body = fetch(url)
            assert status == 302
            assert headers["Location"] == targets[index]
            expected["clicks_total"] += 1
        if clicks:
            expected["clicks_unique"] += 1
        # an altered token is a 404, not a 500
        status, _h, _b = fetch(pixel[0][:-3] + "xx/")
        assert status == 404
    msg = by_rcpt[unsubscribe]
    header = msg["List-Unsubscribe"]
    https_url = re.search(r"<(https?://[^>]+)>", header).group(1)
    status, _h, body = fetch(https_url)
    assert status == 200 and b"Unsubscribe" in body
    assert Contact.objects.get(email__iexact=unsubscribe).status == "active"  # GET changes nothing
    status, _h, _b = fetch(https_url, "POST", b"List-Unsubscribe=One-Click")
    assert status == 200
    assert Contact.objects.get(email__iexact=unsubscribe).status == "unsubscribed"
    expected["unsubscribes"] = 1
    return expected


def check_report(campaign: Campaign, expected: dict[str, int], recipients: int) -> None:
    # Opens and clicks may be queued (Redis): run the writer until the queue is empty.
    hits_drain()
    stats = campaign_stats(campaign)
    assert stats["recipients"] == recipients
    assert (
        stats["sent"]
        == recipients
        == Message.objects.filter(campaign=campaign, status="sent").count()
    )
    assert stats["failed"] == 0
    for key, value in expected.items():
        assert stats[key] == value, key

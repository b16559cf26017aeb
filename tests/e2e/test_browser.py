"""A marketer's day in a real browser: log in, import a CSV, write a campaign, preview it,
send it, read the report. Headless Debian Chromium driven by Playwright against the live
server; Celery tasks run eagerly in the server's thread (see tests/conftest.py).

The screenshots it takes are the ones in README.md, so they always show the current UI.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from django.urls import reverse

from tests.browser import BROWSER_MARKS

DOCS = Path(__file__).resolve().parents[2] / "docs"
PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 20_000

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
expect = sync_api.expect

CSV = (
    "Email Address;First Name;Last Name;city\n"
    "ana@example.com;Ana;Silva;Lisbon\n"
    "ben@example.org;Ben;Okafor;Lagos\n"
    "chen@example.net;Chen;Wei;Taipei\n"
    "zoe@example.com;Zoë;Müller;Berlin\n"
    "not-an-address;Broken;Row;Nowhere\n"
)
CAMPAIGN_HTML = """<html><body style="font-family:sans-serif">
<h1>Hello {{ contact.first_name|default:"friend" }}!</h1>
<p>Spring is here{% if contact.attributes.city %} in {{ contact.attributes.city }}{% endif %}.
Our new collection has arrived.</p>
<p><a href="https://shop.example.com/spring">See the collection</a> ·
<a href="https://blog.example.com/spring-notes">Read the notes</a></p>
<p style="font-size:12px"><a href="{{ unsubscribe_url }}">Unsubscribe</a> ·
<a href="{{ webview_url }}">View online</a></p>
</body></html>"""


@pytest.fixture
def marketer(django_user_model):
    return django_user_model.objects.create_user(
        username="maria", email="maria@example.com", password=PASSWORD
    )


def _shot(page, name: str) -> None:
    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def _stat(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def _tracking_urls(raw: bytes) -> dict[str, list[str]]:
    """The tracked URLs in a message as it was delivered (the outbox keeps the bytes)."""
    parsed = message_from_bytes(bytes(raw), policy=policy.default)
    html = parsed.get_body(preferencelist=("html",)).get_content()
    unsubscribe = re.search(r"<(https?://[^>]+/u/[^>]+)>", str(parsed["List-Unsubscribe"]))
    return {
        "open": re.findall(r'src="(https?://[^"]+/t/o/[^"]+)"', html),
        "click": re.findall(r'href="(https?://[^"]+/t/c/[^"]+)"', html),
        "unsubscribe": [unsubscribe.group(1)] if unsubscribe else [],
    }


def test_a_marketers_day(live_server, browser, marketer, settings, tmp_path):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "outbox", "OPTIONS": {}}}
    settings.BASE_URL = live_server.url  # tracking links in the messages point here
    DOCS.mkdir(exist_ok=True)
    url = live_server.url

    from campaigns.models import Campaign, Message
    from contacts.models import Contact
    from mailcenter.models import OutboxMessage

    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    # --- log in ------------------------------------------------------------------------
    page.goto(f"{url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username or email").fill("maria")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errorlist")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    _shot(page, "login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # --- import a CSV into a new list ----------------------------------------------------
    csv_path = tmp_path / "subscribers.csv"
    csv_path.write_text(CSV, encoding="utf-8")
    page.goto(url + reverse("contacts:import"))
    page.get_by_label("or create a new list named").fill("Spring newsletter")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and choose columns").click()
    # The mapping page: the guesses from Mailchimp's header names, sample values, the mode.
    expect(page.get_by_role("heading", name=re.compile("Columns of"))).to_be_visible()
    expect(page.get_by_label("Email Address", exact=True)).to_have_value("email")
    expect(page.get_by_label("First Name", exact=True)).to_have_value("first_name")
    expect(page.get_by_label("city", exact=True)).to_have_value("new")
    expect(page.get_by_text("Lisbon")).to_be_visible()
    _shot(page, "import-mapping")
    page.get_by_role("button", name="Start the import").click()
    expect(page.get_by_role("heading", name=re.compile("Import of"))).to_be_visible()
    expect(page.locator(".badge")).to_have_text("Done")
    assert _stat(page, "[data-field='created']") == "4"
    assert _stat(page, "[data-field='refused']") == "1"
    refused = page.get_by_role("row", name=re.compile("not-an-address"))
    expect(refused).to_be_visible()
    _shot(page, "import")

    # --- write a campaign ----------------------------------------------------------------
    page.goto(url + reverse("campaigns:create"))
    page.get_by_label("Name:", exact=True).fill("Spring collection")
    page.get_by_label("Subject").fill("{{ contact.first_name|default:'Hello' }}, spring is here")
    page.get_by_label("From name").fill("Example Outfitters")
    page.get_by_label("From address").fill("news@outfitters.example")
    page.get_by_label("Spring newsletter").check()
    page.get_by_label("HTML body").fill(CAMPAIGN_HTML)
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_role("heading", name=re.compile("Spring collection"))).to_be_visible()
    campaign = Campaign.objects.get(name="Spring collection")
    assert campaign.status == Campaign.Status.DRAFT
    assert page.url.endswith(reverse("campaigns:detail", args=[campaign.pk]))

    # --- preview it as one recipient -----------------------------------------------------
    page.get_by_role("link", name="Preview").first.click()
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    zoe = Contact.objects.get(email="zoe@example.com")
    page.get_by_label("Show the message as this recipient gets it").select_option(str(zoe.pk))
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("Zoë, spring is here")).to_be_visible()
    frame = page.frame_locator("iframe[title='Message preview']")
    expect(frame.get_by_role("heading", name="Hello Zoë!")).to_be_visible()
    expect(frame.get_by_text("Spring is here in Berlin")).to_be_visible()
    _shot(page, "preview")

    # --- send it -------------------------------------------------------------------------
    page.goto(url + reverse("campaigns:detail", args=[campaign.pk]))
    page.get_by_role("link", name="Send…").click()
    expect(
        page.get_by_role("heading", name="Send “Spring collection” to 4 recipients now?")
    ).to_be_visible()
    page.get_by_role("button", name="Send now").click()
    expect(page.locator("h1 .badge")).to_have_text("Sent", timeout=30_000)
    expect(page.get_by_text("4 sent, 0 failed, 0 skipped.")).to_be_visible()
    _shot(page, "campaign")

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert set(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        Message.Status.SENT
    }
    kept = {m.recipient: m for m in OutboxMessage.objects.all()}
    assert sorted(kept) == [
        "ana@example.com",
        "ben@example.org",
        "chen@example.net",
        "zoe@example.com",
    ]

    # --- recipients react: opens, clicks, one unsubscribe -------------------------------
    ana = _tracking_urls(kept["ana@example.com"].raw)
    ben = _tracking_urls(kept["ben@example.org"].raw)
    chen = _tracking_urls(kept["chen@example.net"].raw)
    assert len(ana["open"]) == 1 and len(ana["click"]) == 2 and ana["unsubscribe"]
    for hit in [ana["open"][0], ana["open"][0], ben["open"][0]]:
        assert page.request.get(hit).status == 200
    for hit, target in [
        (ana["click"][0], "https://shop.example.com/spring"),
        (ben["click"][0], "https://shop.example.com/spring"),
        (ben["click"][1], "https://blog.example.com/spring-notes"),
    ]:
        response = page.request.get(hit, max_redirects=0)
        assert response.status == 302
        assert response.headers["location"] == target
    page.goto(chen["unsubscribe"][0])
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()

    # --- read the report -----------------------------------------------------------------
    page.goto(url + reverse("campaigns:detail", args=[campaign.pk]))
    page.get_by_role("link", name="View report").click()
    expect(page.get_by_role("heading", name="Report: Spring collection")).to_be_visible()
    expected = {
        "recipients": "4",
        "sent": "4",
        "failed": "0",
        "opens_unique": "2",
        "opens_total": "3",
        "clicks_unique": "2",
        "clicks_total": "3",
        "unsubscribes": "1",
    }
    shown = {key: _stat(page, f"[data-stat='{key}']") for key in expected}
    assert shown == expected
    links = page.locator("#link-stats tr")
    expect(links.filter(has_text="https://shop.example.com/spring")).to_contain_text("2")
    blog = links.filter(has_text="https://blog.example.com/spring-notes")
    expect(blog.locator("td.num").nth(0)).to_have_text("1")
    expect(blog.locator("td.num").nth(1)).to_have_text("1")
    _shot(page, "report")

    # --- the dashboard, on a desktop and on a phone --------------------------------------
    page.goto(f"{url}/")
    expect(page.get_by_role("link", name="Spring collection")).to_be_visible()
    _shot(page, "dashboard")
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=context.storage_state(),
    )
    mobile = phone.new_page()
    mobile.goto(f"{url}/")
    expect(mobile.get_by_role("heading", name="Dashboard")).to_be_visible()
    # Nothing wider than the screen: a phone must not scroll sideways.
    overflow = mobile.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the dashboard is {overflow}px wider than a phone screen"
    _shot(mobile, "mobile-dashboard")
    phone.close()
    context.close()

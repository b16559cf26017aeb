"""Reports: every number on the report page against a direct count of the rows, with
people, Apple MPP prefetches, scanners, bots, bounces, complaints and unsubscribes mixed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
import time_machine
from django.db.models import Count, Q

from campaigns import services as campaign_services
from campaigns.models import Message
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory
from tests.tracking.test_bounces import load
from tracking import tokens
from tracking.models import Event
from tracking.selectors import campaign_stats
from tracking.services import inbound_mail_process

pytestmark = pytest.mark.django_db

SENT_AT = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
EVIL = '=HYPERLINK("http://evil.example")@example.org'


def sent_campaign(settings, capture_on_commit_callbacks, **fields):
    """A campaign sent at SENT_AT to the eleven recipients ``_traffic`` expects."""
    settings.MAILCENTER_BOUNCE_DOMAIN = "bounce.test"
    settings.MAILCENTER_SCANNER_SECONDS = 10
    mailing_list = MailingListFactory()
    emails = [f"p{i}@gmail.test" for i in range(6)] + [f"q{i}@corp.test" for i in range(5)]
    for email in emails:
        ContactFactory(email=email).lists.add(mailing_list)
    campaign = CampaignFactory(lists=[mailing_list], **fields)
    with time_machine.travel(SENT_AT, tick=False), capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    return campaign


@pytest.fixture
def campaign(settings, django_capture_on_commit_callbacks):
    return sent_campaign(settings, django_capture_on_commit_callbacks)


def _messages(campaign):
    return {m.email: m for m in Message.objects.filter(campaign=campaign)}


def _open(client, m, ua, **extra):
    return client.get(f"/t/o/{tokens.make_token('open', m.pk)}/", HTTP_USER_AGENT=ua, **extra)


def _click(client, m, index, ua, method="get"):
    url = f"/t/c/{tokens.make_token('click', m.pk, index)}/"
    return getattr(client, method)(url, HTTP_USER_AGENT=ua)


def _traffic(client, campaign):
    m = _messages(campaign)
    at = lambda minutes: time_machine.travel(SENT_AT + dt.timedelta(minutes=minutes), tick=False)  # noqa: E731
    with at(0.05):  # at delivery: machines
        _open(client, m["p0@gmail.test"], "Mozilla/5.0", REMOTE_ADDR="17.5.6.7")  # MPP
        _open(client, m["p1@gmail.test"], "Mozilla/5.0")  # MPP
        for index in (0, 1):  # a scanner follows every link
            _click(client, m["q0@corp.test"], index, CHROME)
        _click(client, m["q1@corp.test"], 0, CHROME, method="head")
        _open(client, m["q1@corp.test"], "python-requests/2.32")
    with at(30):
        _open(client, m["p0@gmail.test"], IPHONE)  # the MPP user reads it later
        _open(client, m["p2@gmail.test"], GMAIL)
        _open(client, m["p2@gmail.test"], GMAIL)
        _click(client, m["p2@gmail.test"], 0, GMAIL)
        _click(client, m["p2@gmail.test"], 0, GMAIL)
    with at(150):
        _open(client, m["q2@corp.test"], OUTLOOK)
        _click(client, m["q2@corp.test"], 1, OUTLOOK)
        _click(client, m["q0@corp.test"], 1, CHROME)  # a person behind the scanner
        client.post(f"/u/{tokens.make_token('unsubscribe', m['q2@corp.test'].pk)}/")
    with at(200):
        for email, name in [
            ("p3@gmail.test", "gmail_does_not_exist.eml"),
            ("p4@gmail.test", "exim_mailbox_full.eml"),
            ("q3@corp.test", "arf_complaint.eml"),
            ("q4@corp.test", "vacation_autoreply.eml"),
        ]:
            token = tokens.make_token("bounce", m[email].pk)
            inbound_mail_process([f"bounces+{token}@bounce.test"], load(name, token, email))
    return m


def _direct(campaign) -> dict[str, int]:
    """The headline numbers counted straight from the rows, the slow way."""
    events = Event.objects.filter(campaign=campaign)
    human = Q(is_machine=False)
    counts = events.aggregate(
        opens_total=Count("id", filter=Q(kind="open") & human),
        opens_unique=Count("message", filter=Q(kind="open") & human, distinct=True),
        clicks_total=Count("id", filter=Q(kind="click") & human),
        clicks_unique=Count("message", filter=Q(kind="click") & human, distinct=True),
        opens_total_all=Count("id", filter=Q(kind="open")),
        opens_unique_all=Count("message", filter=Q(kind="open"), distinct=True),
        clicks_total_all=Count("id", filter=Q(kind="click")),
        clicks_unique_all=Count("message", filter=Q(kind="click"), distinct=True),
        unsubscribes=Count("message", filter=Q(kind="unsubscribe"), distinct=True),
        complaints=Count("message", filter=Q(kind="complaint"), distinct=True),
        bounces_hard=Count("message", filter=Q(kind="bounce", severity="hard"), distinct=True),
    )
    bounced = events.filter(kind="bounce").values("message").distinct().count()
    counts["bounces_soft"] = bounced - counts["bounces_hard"]
    messages = Message.objects.filter(campaign=campaign)
    counts["recipients"] = messages.count()
    counts["sent"] = messages.filter(status="sent").count()
    counts["delivered"] = counts["sent"] - bounced
    return counts


def _page_numbers(html: str) -> dict[str, int]:
    return {key: int(value) for key, value in re.findall(r'data-stat="(\w+)">(\d+)<', html)}


def test_every_number_on_the_report_matches_a_direct_count(auth_client, client, campaign):
    _traffic(client, campaign)
    direct = _direct(campaign)
    # what the traffic above means, spelled out
    assert direct["opens_unique"] == 3  # p0 (later, iPhone), p2, q2
    assert direct["opens_unique_all"] == 5  # + p1 (MPP only), q1 (bot)
    assert direct["clicks_unique"] == 3  # p2, q2, and q0 (hours later: a person)
    assert direct["clicks_unique_all"] == 4  # + q1's HEAD
    assert direct["bounces_hard"] == 1 and direct["bounces_soft"] == 1
    assert direct["complaints"] == 1 and direct["unsubscribes"] == 1

    stats = campaign_stats(campaign)
    for key, value in direct.items():
        assert stats[key] == value, key

    html = auth_client.get(f"/reports/{campaign.pk}/").content.decode()
    shown = _page_numbers(html)
    for key in direct:
        if key in shown:
            assert shown[key] == direct[key], key
    must_show = {
        "recipients", "sent", "delivered", "opens_unique", "opens_unique_all", "clicks_unique",
        "clicks_unique_all", "opens_total", "clicks_total", "unsubscribes", "complaints",
        "bounces_hard", "bounces_soft",
    }  # fmt: skip
    assert must_show <= set(shown)

    # the rates shown are over delivered messages
    delivered = direct["delivered"]
    open_rate = re.search(r'data-rate="open_rate">([\d.]+)<', html).group(1)
    assert float(open_rate) == round(100 * direct["opens_unique"] / delivered, 1)

    # link table: per link, people's clicks against the events
    for index in (0, 1):
        events = Event.objects.filter(campaign=campaign, kind="click", link__index=index)
        human = events.filter(is_machine=False)
        row = re.search(rf"<tr><td>{index + 1}</td>.*?</tr>", html, re.S).group(0)
        numbers = [int(n) for n in re.findall(r'class="num">(\d+)<', row)]
        assert numbers == [
            human.values("message").distinct().count(),
            human.count(),
            events.filter(is_machine=True).count(),
        ]

    # domains: recipients and openers per domain
    table = re.search(r'<table id="domain-stats">.*?</table>', html, re.S).group(0)
    for domain in ("gmail.test", "corp.test"):
        row = re.search(rf"<td[^>]*>{domain}</td>(.*?)</tr>", table, re.S).group(1)
        numbers = [int(n) for n in re.findall(r'class="num">(\d+)', row)]
        messages = Message.objects.filter(campaign=campaign, email__endswith=f"@{domain}")
        opened = (
            Event.objects.filter(message__in=messages, kind="open", is_machine=False)
            .values("message")
            .distinct()
            .count()
        )
        assert numbers[:2] == [messages.count(), opened]

    # clients: the chart's data is what people opened with
    charts = json.loads(re.search(r'id="chart-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert dict(zip(charts["clients"]["labels"], charts["clients"]["values"], strict=True)) == {
        "Apple Mail": 1,
        "Gmail": 1,
        "Outlook": 1,
    }
    timeline = charts["timeline"]
    assert sum(timeline["opens"]) == direct["opens_total"]
    assert sum(timeline["clicks"]) == direct["clicks_total"]
    assert sum(timeline["opens_machine"]) == direct["opens_total_all"] - direct["opens_total"]
    assert timeline["opens_machine"][0] == 3 and timeline["opens"][2] == 1  # hour 0, hour 2
    funnel = dict(zip(charts["funnel"]["labels"], charts["funnel"]["values"], strict=True))
    assert funnel["Opened"] == direct["opens_unique"]


def test_recipients_list_filters_paginates_and_exports_safely(auth_client, client, campaign):
    m = _traffic(client, campaign)
    base = f"/reports/{campaign.pk}/recipients/"
    page = auth_client.get(base + "?what=opened").content.decode()
    assert "p0@gmail.test" in page and "q2@corp.test" in page and "p1@gmail.test" not in page
    page = auth_client.get(base + "?what=machine").content.decode()
    assert "p1@gmail.test" in page and "q1@corp.test" in page and "p2@gmail.test" not in page
    page = auth_client.get(base + "?what=bounced").content.decode()
    assert "p3@gmail.test" in page and "Hard bounce" in page and "Soft bounce" in page
    assert auth_client.get(base + "?what=nonsense&page=999").status_code == 200
    # the count above each list comes from the counters, and is the list's length
    for what in ("opened", "clicked", "unsubscribed", "bounced", "complained"):
        html = auth_client.get(f"{base}?what={what}").content.decode()
        listed = len(re.findall(r'<tr><td style="word-break:break-all">', html))
        shown = int(re.search(r'id="recipients-total">(\d+) recipients?<', html).group(1))
        assert shown == listed, what
    assert auth_client.get(base + "?page=x").status_code == 200

    # an address that a spreadsheet would run as a formula
    Message.objects.filter(pk=m["p2@gmail.test"].pk).update(email=EVIL)
    response = auth_client.get(f"/reports/{campaign.pk}/recipients.csv?what=clicked")
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {r["email"] for r in rows} == {"'" + EVIL, "q2@corp.test", "q0@corp.test"}
    assert all(not r["email"].startswith("=") for r in rows)


def test_report_pages_need_login(client, campaign):
    for url in (
        f"/reports/{campaign.pk}/",
        f"/reports/{campaign.pk}/recipients/",
        f"/reports/{campaign.pk}/recipients.csv",
        "/reports/",
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_dashboard_shows_trends(auth_client, client, campaign):
    _traffic(client, campaign)
    html = auth_client.get("/reports/").content.decode()
    data = json.loads(re.search(r'id="trend-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert len(data["labels"]) == 1
    assert data["open_rate"] == [round(100 * 3 / 11, 1)]
    assert 'data-chart="trends"' in html and "chart.umd.min.js" in html
    row = re.search(r"<tr><td><a href=\"/reports/\d+/\">.*?</tr>", html, re.S).group(0)
    sent, opened, clicked = (int(n) for n in re.findall(r'class="num">(\d+)<', row))
    assert (sent, opened, clicked) == (11, 3, 3)


def test_report_of_an_unknown_campaign_is_404(auth_client, db):
    assert auth_client.get("/reports/999999/").status_code == 404
    assert auth_client.get("/reports/999999/recipients.csv").status_code == 404


def test_rebuilding_the_counters_from_the_events_gives_the_same_report(client, campaign):
    from django.core.management import call_command

    from tracking.selectors import campaign_clients, campaign_link_stats

    _traffic(client, campaign)
    before = (campaign_stats(campaign), campaign_link_stats(campaign), campaign_clients(campaign))
    out = io.StringIO()
    call_command("tracking_rebuild_reports", str(campaign.pk), stdout=out)
    assert f"campaign {campaign.pk}: {Event.objects.count()} events" in out.getvalue()
    after = (campaign_stats(campaign), campaign_link_stats(campaign), campaign_clients(campaign))
    assert after == before


def test_recipients_csv_has_each_bounce_code_and_diagnostic_made_inert(
    auth_client, client, campaign, monkeypatch
):
    from tracking import report_views

    monkeypatch.setattr(report_views, "_CSV_CHUNK", 1)  # bounces looked up chunk by chunk
    m = _traffic(client, campaign)
    hard = Event.objects.get(kind="bounce", message=m["p3@gmail.test"])
    soft = Event.objects.get(kind="bounce", message=m["p4@gmail.test"])
    Event.objects.filter(pk=soft.pk).update(diagnostic='=HYPERLINK("http://evil.example")')
    response = auth_client.get(f"/reports/{campaign.pk}/recipients.csv?what=bounced")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(body))}
    assert set(rows) == {"p3@gmail.test", "p4@gmail.test"}
    p3 = rows["p3@gmail.test"]
    assert (p3["bounce"], p3["bounce_status"], p3["bounce_smtp_code"]) == (
        "hard",
        hard.status_code,
        str(hard.smtp_code or ""),
    )
    assert p3["bounce_status"].startswith("5.") and p3["bounce_diagnostic"] == hard.diagnostic
    assert rows["p4@gmail.test"]["bounce_diagnostic"] == '\'=HYPERLINK("http://evil.example")'
    # recipients who did not bounce have the columns empty
    body = b"".join(
        auth_client.get(f"/reports/{campaign.pk}/recipients.csv?what=opened").streaming_content
    ).decode("utf-8-sig")
    for r in csv.DictReader(io.StringIO(body)):
        assert r["bounce_status"] == r["bounce_smtp_code"] == r["bounce_diagnostic"] == ""

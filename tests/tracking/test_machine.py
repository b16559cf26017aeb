"""Honest numbers: machine opens and clicks flagged and kept out of the headline figures;
tracking switched off per campaign or globally; IP addresses truncated or dropped."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from campaigns import rendering
from campaigns import services as campaign_services
from campaigns.models import Message
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tracking import machine, tokens
from tracking.models import Event
from tracking.selectors import campaign_link_stats, campaign_stats

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
OUTLOOK = "Microsoft Outlook 16.0.17328; Pro"
SENT_AT = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("kind", "kwargs", "reason"),
    [
        ("open", {"user_agent": BROWSER}, ""),
        ("open", {"user_agent": OUTLOOK}, ""),
        ("open", {"user_agent": BROWSER, "method": "HEAD"}, "head"),
        ("open", {"user_agent": ""}, "bot"),
        ("open", {"user_agent": "python-requests/2.32"}, "bot"),
        ("click", {"user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}, "bot"),
        ("click", {"user_agent": "Barracuda Sentinel (EE)"}, "bot"),
        ("click", {"user_agent": "Mozilla/5.0 HeadlessChrome/120.0"}, ""),
        ("open", {"user_agent": "Mozilla/5.0"}, "apple_mpp"),
        ("open", {"user_agent": BROWSER, "ip": "17.58.1.2"}, "apple_mpp"),
        ("click", {"user_agent": "Mozilla/5.0", "seconds_since_sent": 3600}, ""),
        (
            "click",
            {"user_agent": BROWSER, "seconds_since_sent": 2, "scanner_seconds": 10},
            "scanner",
        ),
        (
            "click",
            {
                "user_agent": BROWSER,
                "seconds_since_sent": 2,
                "scanner_seconds": 10,
                "human_open_before": True,
            },
            "",
        ),
        ("click", {"user_agent": BROWSER, "seconds_since_sent": 60, "scanner_seconds": 10}, ""),
    ],
)
def test_machine_reason(kind, kwargs, reason):
    assert machine.machine_reason(kind, **kwargs) == reason


@pytest.mark.parametrize(
    ("ip", "mode", "stored"),
    [
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "truncated", "203.0.113.0"),
        ("203.0.113.77", "none", None),
        ("2001:db8:abcd:12:1:2:3:4", "truncated", "2001:db8:abcd::"),
        ("2001:db8:abcd:12:1:2:3:4", "full", "2001:db8:abcd:12:1:2:3:4"),
        ("not-an-ip", "full", None),
        (None, "truncated", None),
    ],
)
def test_truncate_ip(ip, mode, stored):
    assert machine.truncate_ip(ip, mode) == stored


@pytest.fixture
def sent(db, django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    for _ in range(4):
        SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with (
        time_machine.travel(SENT_AT, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        campaign_services.campaign_start(campaign.pk)
    return campaign, list(Message.objects.filter(campaign=campaign).order_by("id"))


def _open(client, message, **extra):
    return client.get(f"/t/o/{tokens.make_token('open', message.pk)}/", **extra)


def _click(client, message, index, method="get", **extra):
    url = f"/t/c/{tokens.make_token('click', message.pk, index)}/"
    return getattr(client, method)(url, **extra)


def test_machine_traffic_is_flagged_and_kept_out_of_headline_figures(client, sent, settings):
    settings.MAILCENTER_SCANNER_SECONDS = 10
    campaign, (person, apple, scanned, bot) = sent
    browser = {"HTTP_USER_AGENT": BROWSER, "REMOTE_ADDR": "198.51.100.9"}
    with time_machine.travel(SENT_AT + dt.timedelta(seconds=2), tick=False):
        # a security gateway follows every link of one message at delivery
        for index in (0, 1):
            assert _click(client, scanned, index, **browser).status_code == 302
        # Apple's proxy fetches the pixel at delivery
        assert _open(client, apple, HTTP_USER_AGENT="Mozilla/5.0", REMOTE_ADDR="17.1.2.3")
        # a link checker HEADs, a bot GETs
        assert _click(client, bot, 0, method="head", **browser).status_code == 302
        _open(client, bot, HTTP_USER_AGENT="curl/8.5.0")
    with time_machine.travel(SENT_AT + dt.timedelta(hours=3), tick=False):
        _open(client, person, **browser)
        _open(client, person, **browser)
        _click(client, person, 1, **browser)
        _click(client, scanned, 0, **browser)  # later, the person behind the gateway

    reasons = {
        (e.message_id, e.kind, e.machine_reason) for e in Event.objects.filter(is_machine=True)
    }
    assert reasons == {
        (scanned.pk, "click", "scanner"),
        (apple.pk, "open", "apple_mpp"),
        (bot.pk, "click", "head"),
        (bot.pk, "open", "bot"),
    }
    stats = campaign_stats(campaign)
    direct = {
        "opens_total": Event.objects.filter(kind="open", is_machine=False).count(),
        "opens_unique_all": Event.objects.filter(kind="open").values("message").distinct().count(),
    }
    assert direct == {"opens_total": 2, "opens_unique_all": 3}
    assert (stats["opens_unique"], stats["opens_total"]) == (1, 2)
    assert (stats["opens_unique_all"], stats["opens_total_all"]) == (3, 4)
    assert (stats["clicks_unique"], stats["clicks_total"]) == (2, 2)
    assert (stats["clicks_unique_all"], stats["clicks_total_all"]) == (3, 5)
    links = campaign_link_stats(campaign)
    assert [lk["clicks_total"] for lk in links] == [1, 1]


def test_report_shows_both_figures_where_they_differ(auth_client, client, sent):
    campaign, (person, apple, _s, _b) = sent
    with time_machine.travel(SENT_AT + dt.timedelta(hours=1), tick=False):
        _open(client, person, HTTP_USER_AGENT=BROWSER)
        _open(client, apple, HTTP_USER_AGENT="Mozilla/5.0")
    html = auth_client.get(f"/reports/{campaign.pk}/").content.decode()
    assert 'data-stat="opens_unique">1<' in html
    assert 'data-stat="opens_unique_all">2<' in html


def test_ip_is_stored_as_configured(client, sent, settings):
    _campaign, (person, *_rest) = sent
    for mode, stored in [("truncated", "198.51.100.0"), ("none", None), ("full", "198.51.100.9")]:
        settings.MAILCENTER_TRACKING_IP = mode
        _open(client, person, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.9")
        assert Event.objects.latest("id").ip == stored


def test_default_ip_mode_is_truncated(client, sent):
    _campaign, (person, *_rest) = sent
    _open(client, person, HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="198.51.100.9")
    assert Event.objects.get().ip == "198.51.100.0"


def _render(campaign):
    compiled = rendering.compile_campaign(campaign)
    return rendering.render_message(compiled, rendering.contact_context("a@example.org"), 1).html


def test_tracking_off_per_campaign_means_no_pixel_and_no_rewriting(db, client, sent):
    campaign, (person, *_rest) = sent
    assert "/t/o/" in _render(campaign) and "/t/c/" in _render(campaign)
    campaign.track_opens = False
    assert "/t/o/" not in _render(campaign) and "/t/c/" in _render(campaign)
    campaign.track_clicks = False
    html = _render(campaign)
    assert "/t/c/" not in html and 'href="https://example.com/offer"' in html
    campaign.save()
    # links in messages sent earlier still work, and record nothing now
    assert _open(client, person, HTTP_USER_AGENT=BROWSER).status_code == 200
    assert _click(client, person, 0, HTTP_USER_AGENT=BROWSER).status_code == 302
    assert not Event.objects.exists()


def test_tracking_off_globally(client, sent, settings, monkeypatch):
    campaign, (person, *_rest) = sent
    monkeypatch.setenv("MAILCENTER_TRACKING", "off")
    html = _render(campaign)
    assert "/t/o/" not in html and "/t/c/" not in html
    assert _open(client, person, HTTP_USER_AGENT=BROWSER).status_code == 200
    assert _click(client, person, 0, HTTP_USER_AGENT=BROWSER).status_code == 302
    assert not Event.objects.exists()
    # unsubscribing is not tracking: it always works
    client.post(f"/u/{tokens.make_token('unsubscribe', person.pk)}/")
    assert Event.objects.get().kind == "unsubscribe"


def test_tracking_switches_in_the_form_and_the_api(auth_client, db):
    mailing_list = MailingListFactory()
    data = {
        "name": "Quiet",
        "subject": "Hello",
        "from_email": "news@example.com",
        "html": "<p>Hi</p>",
        "lists": [mailing_list.pk],
        "track_clicks": "on",
    }
    page = auth_client.get("/campaigns/new/").content.decode()
    assert 'name="track_opens"' in page and 'name="track_clicks"' in page
    response = auth_client.post("/campaigns/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    from campaigns.models import Campaign

    campaign = Campaign.objects.get(name="Quiet")
    assert (campaign.track_opens, campaign.track_clicks) == (False, True)
    api = auth_client.patch(
        f"/api/v1/campaigns/{campaign.pk}/",
        {"track_opens": True, "track_clicks": False},
        content_type="application/json",
    )
    assert api.status_code == 200, api.content
    assert (api.json()["track_opens"], api.json()["track_clicks"]) == (True, False)
    campaign.refresh_from_db()
    assert (campaign.track_opens, campaign.track_clicks) == (True, False)

"""Report pages that stay fast for a million recipients (bench/report_page.py): keyset
pages of recipients, message counts stored and counted again when they may have moved,
and the dashboard counting only the campaigns it shows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from campaigns.models import Campaign, Message
from contacts.models import Segment
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory
from tracking import selectors, services
from tracking.models import CampaignMessageStat, MessageActivity
from tracking.report_views import CampaignRecipientsView

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def _campaign(
    n: int, *, status=Campaign.Status.SENT, finished_at=NOW, prefix: str = "r"
) -> Campaign:
    """A campaign with ``n`` sent messages; message i opened when i is even, bounced when
    i is a multiple of 5, and activity of some kind for all but the last one."""
    mailing_list = MailingListFactory()
    campaign = CampaignFactory(
        lists=[mailing_list], status=status, started_at=NOW, finished_at=finished_at
    )
    # Contacts in the opposite order to their messages, so that a list paged by contact
    # and one paged by message are told apart.
    contacts = {i: ContactFactory(email=f"{prefix}{i}@example.test") for i in reversed(range(n))}
    for i in range(n):
        contact = contacts[i]
        message = Message.objects.create(
            campaign=campaign, contact=contact, email=contact.email, status=Message.Status.SENT
        )
        if i == n - 1:
            continue
        MessageActivity.objects.create(
            message=message,
            campaign=campaign,
            domain="example.test",
            opened_at=NOW if i % 2 == 0 else None,
            opened_any_at=NOW,
            bounced_at=NOW if i % 5 == 0 else None,
            bounce_severity="hard" if i % 5 == 0 else "",
        )
    return campaign


def _walk(campaign, what, size):
    """Every row of a list, following the older cursors from the newest page, then the
    newer cursors back from the last page."""
    page = selectors.campaign_recipients_page(campaign, what, size=size)
    assert page.newer is None
    pages = [page]
    while page.older is not None:
        page = selectors.campaign_recipients_page(campaign, what, before=page.older, size=size)
        pages.append(page)
        assert len(pages) <= 100, "the pages go round in circles"
    assert pages[-1].older is None
    back = [pages[-1]]
    while back[-1].newer is not None:
        back.append(
            selectors.campaign_recipients_page(campaign, what, after=back[-1].newer, size=size)
        )
        assert len(back) <= 100, "the pages go round in circles"
    forward_ids = [[a.message_id for a in p.rows] for p in pages]
    backward_ids = [[a.message_id for a in p.rows] for p in reversed(back)]
    assert forward_ids == backward_ids  # the same pages, whichever way they are walked
    return [a.message_id for p in pages for a in p.rows]


@pytest.mark.parametrize("what", ["", "opened", "bounced", "machine", "not_opened"])
def test_keyset_pages_list_everyone_once_newest_first(what):
    campaign = _campaign(23)
    if what == selectors.NOT_OPENED:
        expected = list(selectors.campaign_not_opened(campaign).values_list("id", flat=True))
    else:
        expected = list(
            selectors.campaign_recipients(campaign, what).values_list("message_id", flat=True)
        )
    assert expected  # each of these lists has people in it
    for size in (1, 4, 50):
        assert _walk(campaign, what, size) == expected


def test_a_cursor_past_either_end_or_not_a_number_gives_the_newest_page(auth_client):
    campaign = _campaign(6)
    newest = selectors.campaign_recipients_page(campaign, "", size=2)
    first_id = max(MessageActivity.objects.values_list("message_id", flat=True))
    for cursor in ({"before": 0}, {"after": first_id}):
        page = selectors.campaign_recipients_page(campaign, "", size=2, **cursor)
        assert [a.pk for a in page.rows] == [a.pk for a in newest.rows]
        assert (page.newer, page.older) == (None, newest.older)
    base = f"/reports/{campaign.pk}/recipients/"
    for query in ("?before=x", "?after=-3", "?page=999", "?before=0&what=nonsense"):
        assert auth_client.get(base + query).status_code == 200


def test_recipients_page_links_older_and_newer_pages(auth_client, monkeypatch):
    monkeypatch.setattr(CampaignRecipientsView, "page_size", 2)
    campaign = _campaign(11)  # opened: r8, r6 | r4, r2 | r0
    base = f"/reports/{campaign.pk}/recipients/"
    html = auth_client.get(base + "?what=opened").content.decode()
    older = re.search(r'rel="next" href="\?([^"]+)"', html).group(1).replace("&amp;", "&")
    assert 'rel="prev"' not in html
    assert "what=opened" in older and "before=" in older
    html = auth_client.get(base + "?" + older).content.decode()
    assert 'rel="prev"' in html and 'rel="next"' in html
    shown = re.findall(r">(r\d+@example.test)<", html)
    assert shown == ["r4@example.test", "r2@example.test"]


def test_recipients_page_queries_do_not_grow_with_its_rows(
    auth_client, django_assert_max_num_queries
):
    campaign = _campaign(60)
    url = f"/reports/{campaign.pk}/recipients/?what=bounced"
    auth_client.get(url)  # the session is saved once, after logging in
    # session, user, time zone, campaign, page, its messages, their bounces, the count,
    # the segment name
    with django_assert_max_num_queries(9):
        response = auth_client.get(url)
    assert response.content.decode().count("Hard bounce") == 12


def test_report_counts_the_messages_once_and_again_when_they_may_have_moved(auth_client):
    campaign = _campaign(4, status=Campaign.Status.SENDING, finished_at=None)
    Message.objects.filter(email="r3@example.test").update(status=Message.Status.QUEUED)
    with time_machine.travel(NOW, tick=False):
        services.message_stats_refresh([campaign])
    stat = CampaignMessageStat.objects.get(campaign=campaign)
    assert (stat.recipients, stat.sent, stat.failed, stat.counted_at) == (4, 3, 0, NOW)

    Message.objects.filter(email="r3@example.test").update(status=Message.Status.FAILED)
    # while sending, the stored counts are shown for a few seconds, then counted again
    with time_machine.travel(NOW + dt.timedelta(seconds=10), tick=False):
        services.message_stats_refresh([campaign])
        assert selectors.campaign_stats(campaign)["failed"] == 0
    with time_machine.travel(NOW + selectors.MESSAGE_RECOUNT_SENDING * 2, tick=False):
        services.message_stats_refresh([campaign])
        assert selectors.campaign_stats(campaign)["failed"] == 1

    # finishing makes them stale at once; after that they hold until the hourly recount
    finished = NOW + dt.timedelta(minutes=5)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.SENT, finished_at=finished
    )
    Message.objects.filter(email="r3@example.test").update(status=Message.Status.SENT)
    campaign.refresh_from_db()
    with time_machine.travel(finished + dt.timedelta(seconds=1), tick=False):
        html = auth_client.get(f"/reports/{campaign.pk}/").content.decode()
        assert 'data-stat="sent">4<' in html
    Message.objects.filter(email="r0@example.test").delete()  # its contact was deleted
    with time_machine.travel(finished + dt.timedelta(minutes=30), tick=False):
        services.message_stats_refresh([campaign])
        assert selectors.campaign_stats(campaign)["recipients"] == 4
    with time_machine.travel(finished + selectors.MESSAGE_RECOUNT_FINISHED * 2, tick=False):
        response = auth_client.get(f"/api/v1/campaigns/{campaign.pk}/stats/")
        assert response.json()["recipients"] == 3


def test_stats_without_stored_counts_count_the_messages():
    campaign = _campaign(3)
    assert not CampaignMessageStat.objects.exists()
    stats = selectors.campaign_stats(campaign)
    assert (stats["recipients"], stats["sent"]) == (3, 3)
    stale = CampaignMessageStat.objects.create(
        campaign=campaign, recipients=99, sent=99, failed=0, counted_at=NOW
    )
    assert selectors.campaign_stats(campaign)["sent"] == 3  # counted before it finished
    stale.counted_at = timezone.now()
    stale.save()
    assert selectors.campaign_stats(campaign)["sent"] == 99  # fresh: what was stored


def test_dashboard_counts_only_the_campaigns_on_its_page(
    auth_client, django_assert_max_num_queries
):
    for n in (2, 3, 4):
        _campaign(n, prefix=f"c{n}-")
    auth_client.get("/reports/")  # counts the campaigns' messages, in one query, and stores them
    assert CampaignMessageStat.objects.count() == 3
    # session, user, time zone, page count, page, stored counts (refresh, then read),
    # counters, trends (campaigns, counters)
    with django_assert_max_num_queries(10):
        html = auth_client.get("/reports/").content.decode()
    sent = [int(n) for n in re.findall(r'<td class="num">(\d+)</td><td class="num">', html)]
    assert sorted(sent) == [2, 3, 4]


def test_not_opened_lists_delivered_messages_nobody_read_with_or_without_activity(auth_client):
    campaign = _campaign(8)  # activity for r0..r6: opened when even, bounced r0 and r5
    clicked = MessageActivity.objects.get(message__email="r3@example.test")
    clicked.clicked_at = NOW  # clicked with images off: read all the same
    clicked.save()
    Message.objects.filter(email="r1@example.test").update(status=Message.Status.FAILED)
    base = f"/reports/{campaign.pk}/recipients/"
    html = auth_client.get(base + "?what=not_opened").content.decode()
    shown = re.findall(r">(r\d+@example.test)<", html)
    assert shown == ["r7@example.test"]  # r7: no activity row at all
    assert 'id="recipients-total"' not in html  # no counter says how many: none shown
    assert 'id="save-segment"' in html
    body = b"".join(
        auth_client.get(f"/reports/{campaign.pk}/recipients.csv?what=not_opened").streaming_content
    ).decode("utf-8-sig")
    lines = body.splitlines()
    assert len(lines) == 2 and lines[1].startswith("r7@example.test,,0,,0,")


def test_not_opened_saved_as_a_segment_opens_in_the_builder(auth_client):
    campaign = _campaign(8)
    response = auth_client.post(
        f"/reports/{campaign.pk}/recipients/segment/", {"what": "not_opened", "name": "Unread"}
    )
    assert response.status_code == 302
    segment = Segment.objects.get(name="Unread")
    assert [(r["field"], r["op"]) for r in segment.rules["rules"]] == [
        ("sent", "campaign"),
        ("opened", "not_campaign"),
        ("clicked", "not_campaign"),
        ("bounced", "not_campaign"),
    ]
    assert auth_client.get(response["Location"]).status_code == 200
    # that it holds the list's people, from real traffic: test_report_segments


def test_a_finished_campaign_has_its_counts_ready_before_anyone_opens_its_report(
    django_capture_on_commit_callbacks, settings
):
    """Finishing a campaign counts its recipients per domain and its messages in a task, so
    the first report view of a million-recipient campaign does not do it."""
    from campaigns import services as campaign_services
    from campaigns.services import sending
    from tests.factories import SubscriptionFactory
    from tracking.report_views import DOMAIN_RECOUNT

    mailing_list = MailingListFactory()
    for _ in range(3):
        SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    settings.MAILCENTER_SEND_CONCURRENCY = 0  # no send tasks: the test marks them sent
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    Message.objects.filter(campaign=campaign).update(status=Message.Status.SENT)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert sending.campaign_finish_if_done(campaign.pk)
    assert callbacks
    campaign.refresh_from_db()
    now = timezone.now()
    assert not selectors.domain_stats_stale(campaign, now=now, max_age=DOMAIN_RECOUNT)
    stat = CampaignMessageStat.objects.get(campaign=campaign)
    assert not selectors.message_stats_stale(campaign, stat, now=now)
    assert (stat.recipients, stat.sent) == (3, 3)

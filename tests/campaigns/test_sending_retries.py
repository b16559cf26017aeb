"""Retry rules of the send loop: backoff, maximum age, attempt log, slowed-down domains."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import conf, services
from campaigns.models import Message
from mailcenter.delivery import Accepted, Deferred, Rejected
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def _started(emails: list[str]):
    mailing_list = MailingListFactory()
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list])
    services.campaign_start(campaign.pk)
    return campaign


def _attempt(campaign, result_for, now):
    """Claim everything due at ``now`` and record ``result_for(message)`` for each."""
    token, claimed = services.messages_claim(campaign.pk, 100, now=now)
    services.messages_record_results(token, [result_for(m) for m in claimed], now=now)
    return claimed


def _deferred(m):
    return Deferred(ref=str(m.pk), code=451, reply="4.7.1 try later")


def test_defaults_are_minutes_and_three_days(monkeypatch):
    assert conf.retry_base_seconds() == 300
    assert conf.retry_max_seconds() == 4 * 3600
    assert conf.retry_max_age_seconds() == 3 * 24 * 3600
    monkeypatch.setenv("MAILCENTER_RETRY_BASE_SECONDS", "60")
    assert conf.retry_base_seconds() == 60


def test_backoff_doubles_up_to_the_cap(settings):
    settings.MAILCENTER_RETRY_BASE_SECONDS = 300
    settings.MAILCENTER_RETRY_MAX_SECONDS = 1200
    campaign = _started(["a@example.org"])
    now = timezone.now()
    delays = []
    for _ in range(4):
        _attempt(campaign, _deferred, now)
        message = Message.objects.get(campaign=campaign)
        delays.append((message.next_attempt_at - now).total_seconds())
        now = message.next_attempt_at
    assert delays == [300, 600, 1200, 1200]
    assert message.status == "deferred" and message.attempts == 4


def test_a_deferred_message_fails_at_the_maximum_age(settings):
    settings.MAILCENTER_RETRY_BASE_SECONDS = 3600
    settings.MAILCENTER_RETRY_MAX_SECONDS = 24 * 3600
    settings.MAILCENTER_RETRY_MAX_AGE_SECONDS = 3 * 24 * 3600
    campaign = _started(["a@example.org"])
    start = now = timezone.now()
    for _ in range(50):
        _attempt(campaign, _deferred, now)
        message = Message.objects.get(campaign=campaign)
        if message.status != "deferred":
            break
        assert message.next_attempt_at <= start + timedelta(days=3)
        now = message.next_attempt_at
    assert message.status == "failed"
    assert now == start + timedelta(days=3)  # the last try falls exactly at the maximum age
    assert message.enhanced_status == "4.7.1"
    assert message.last_reply.startswith("Gave up after")
    assert message.first_attempt_at == start
    # nothing left to send: the campaign completes
    assert services.campaign_finish_if_done(campaign.pk)


def test_attempt_log_keeps_the_first_and_the_latest(settings):
    settings.MAILCENTER_ATTEMPT_LOG_SIZE = 4
    settings.MAILCENTER_RETRY_BASE_SECONDS = 1
    settings.MAILCENTER_RETRY_MAX_SECONDS = 1
    campaign = _started(["a@example.org"])
    now = timezone.now()
    for n in range(6):
        _attempt(
            campaign,
            lambda m, n=n: Deferred(ref=str(m.pk), code=450 + n, reply=f"4.0.0 try {n}"),
            now,
        )
        now += timedelta(seconds=10)
    _attempt(campaign, lambda m: Accepted(ref=str(m.pk), reply="2.0.0 queued as X1"), now)
    message = Message.objects.get(campaign=campaign)
    assert message.status == "sent" and message.attempts == 7
    assert [a["code"] for a in message.attempt_log] == [450, 453, 454, 455]
    assert message.last_reply == "2.0.0 queued as X1" and message.smtp_code == 250


def test_a_burst_of_4xx_from_one_domain_holds_that_domain_back(settings):
    settings.MAILCENTER_DOMAIN_BURST = 3
    settings.MAILCENTER_RETRY_BASE_SECONDS = 300
    emails = [f"u{i}@slow.test" for i in range(6)] + [f"u{i}@fine.test" for i in range(3)]
    campaign = _started(emails)
    now = timezone.now()
    token, claimed = services.messages_claim(campaign.pk, 4, now=now)  # u0..u3 @slow.test
    services.messages_record_results(token, [_deferred(m) for m in claimed], now=now)
    token, rest = services.messages_claim(campaign.pk, 100, now=now)
    assert sorted(m.email for m in rest) == ["u0@fine.test", "u1@fine.test", "u2@fine.test"]
    later = now + timedelta(seconds=301)
    _token, due = services.messages_claim(campaign.pk, 100, now=later)
    assert {m.email.split("@")[1] for m in due} == {"slow.test"} and len(due) == 6


def test_a_few_4xx_do_not_hold_the_domain_back(settings):
    settings.MAILCENTER_DOMAIN_BURST = 3
    campaign = _started([f"u{i}@example.org" for i in range(4)])
    now = timezone.now()
    token, claimed = services.messages_claim(campaign.pk, 2, now=now)
    services.messages_record_results(token, [_deferred(m) for m in claimed], now=now)
    assert len(services.messages_claim(campaign.pk, 100, now=now)[1]) == 2


def test_5xx_fails_at_once_even_on_the_first_attempt():
    campaign = _started(["a@example.org"])
    now = timezone.now()
    _attempt(
        campaign,
        lambda m: Rejected(
            ref=str(m.pk), code=554, reply="5.7.1 spam rejected", enhanced_status="5.7.1"
        ),
        now,
    )
    message = Message.objects.get(campaign=campaign)
    assert (message.status, message.smtp_code, message.enhanced_status) == ("failed", 554, "5.7.1")
    assert message.attempt_log == [
        {"at": now.isoformat(), "code": 554, "reply": "5.7.1 spam rejected"}
    ]


def test_message_page_shows_replies_and_attempts(auth_client):
    campaign = _started(["a@example.org", "b@example.org"])
    now = timezone.now()
    _attempt(campaign, _deferred, now)
    url = f"/campaigns/{campaign.pk}/messages/"
    page = auth_client.get(url, {"status": "deferred"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "a@example.org" in body and "4.7.1 try later" in body and "<strong>451</strong>" in body
    _attempt(
        campaign, lambda m: Rejected(ref=str(m.pk), code=550, reply="5.1.1 unknown"), now
    )  # nothing due yet: still deferred
    later = now + timedelta(hours=1)
    _attempt(campaign, lambda m: Rejected(ref=str(m.pk), code=550, reply="5.1.1 unknown"), later)
    body = auth_client.get(url, {"status": "failed", "q": "b@"}).content.decode()
    assert "b@example.org" in body and "a@example.org" not in body
    assert "2 unsuccessful attempts" in body
    assert auth_client.get(url, {"status": "nonsense", "page": "x"}).status_code in (200, 404)
    detail = auth_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f"/campaigns/{campaign.pk}/messages/?status=deferred" in detail


def test_recording_a_batch_costs_the_same_few_queries_whatever_its_size(
    django_assert_max_num_queries,
):
    campaign = _started([f"u{i}@example.org" for i in range(30)])
    token, claimed = services.messages_claim(campaign.pk, 30)
    results = [
        Accepted(ref=str(m.pk), reply="2.0.0 ok") if i % 3 else _deferred(m)
        for i, m in enumerate(claimed)
    ]
    # 6 for the results, 1 to see whether any webhook endpoint wants "delivered".
    with django_assert_max_num_queries(7):
        services.messages_record_results(token, results)
    assert Message.objects.filter(status="sent").count() == 20

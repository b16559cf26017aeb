"""Throttling in the send loop: a campaign sends no more than its limits allow, yet completes.

The limiter's clock and its waits are replaced by a fake clock that only moves when the
send loop waits, so minutes of windows pass in milliseconds; everything else is real (the
limiter of the configuration under test: Redis when it is the broker, else the database).
"""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings

from campaigns import services
from campaigns.models import Message
from mailcenter.delivery import outbox, throttle
from tests.factories import CampaignFactory, ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


class FakeClock:
    def __init__(self) -> None:
        self.t = throttle.clock()
        self.waited = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.waited += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(throttle, "clock", fake)
    monkeypatch.setattr(throttle, "sleep", fake.sleep)
    return fake


@pytest.fixture(autouse=True)
def limiter(monkeypatch):
    """The configured kind of limiter, with keys of this test's own."""
    url = django_settings.CELERY_BROKER_URL
    if url.startswith("redis://"):
        limiter = throttle.RedisLimiter(url, prefix=f"test-throttle:{uuid.uuid4().hex}:")
    else:
        limiter = throttle.DatabaseLimiter()
    monkeypatch.setattr(throttle, "get_limiter", lambda: limiter)
    yield limiter
    if isinstance(limiter, throttle.RedisLimiter):
        limiter.flush()


@pytest.fixture
def sent_at(monkeypatch, clock):
    """(fake time, recipient) of every message the outbox backend took."""
    log: list[tuple[float, str]] = []
    original = outbox.OutboxBackend.send_batch

    def send_batch(self, messages):
        log.extend((clock(), m.recipient) for m in messages)
        return original(self, messages)

    monkeypatch.setattr(outbox.OutboxBackend, "send_batch", send_batch)
    return log


def _sender(settings, **options):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "outbox", "OPTIONS": options}}


def _campaign(emails):
    mailing_list = MailingListFactory()
    for email in emails:
        SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email=email))
    campaign = CampaignFactory(lists=[mailing_list])
    services.campaign_start(campaign.pk)  # its queued tasks never run: we drive the loop
    return campaign


def _run(campaign, max_batches=500):
    for _n in range(max_batches):
        if not services.campaign_send_batch(campaign.pk):
            break
    campaign.refresh_from_db()
    return campaign


def _max_in_any_window(times, seconds):
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + seconds) for t in times)


def test_window_caps_each_period_and_the_campaign_completes(settings, sent_at, clock):
    _sender(settings, window={"count": 5, "seconds": 60})
    campaign = _run(_campaign([f"u{i}@example.org" for i in range(12)]))
    assert campaign.status == "sent"
    assert Message.objects.filter(status="sent").count() == 12
    assert sorted(r for _t, r in sent_at) == sorted(f"u{i}@example.org" for i in range(12))
    assert _max_in_any_window([t for t, _r in sent_at], 60) == 5
    assert 120 <= clock.waited < 130  # three windows' worth: 5 + 5 + 2
    # A limit is not a failed attempt: every message was attempted exactly once.
    assert set(Message.objects.values_list("attempts", flat=True)) == {1}


def test_rate_caps_messages_per_second(settings, sent_at, clock):
    _sender(settings, rate=2)
    campaign = _run(_campaign([f"u{i}@example.org" for i in range(7)]))
    assert campaign.status == "sent"
    assert len(sent_at) == 7
    assert _max_in_any_window([t for t, _r in sent_at], 1.0) == 2
    assert 3 <= clock.waited < 4


def test_fractional_rate_and_window_together(settings, sent_at, clock):
    _sender(settings, rate=0.5, window=[{"count": 3, "seconds": 100}])
    campaign = _run(_campaign([f"u{i}@example.org" for i in range(4)]))
    assert campaign.status == "sent"
    times = [t for t, _r in sent_at]
    assert _max_in_any_window(times, 2.0) == 1
    assert _max_in_any_window(times, 100) == 3


def test_domain_per_minute_puts_the_excess_back(settings, sent_at, clock):
    _sender(settings)
    settings.MAILCENTER_DOMAIN_RATES = {"gmail.com": 3}
    settings.MAILCENTER_THROTTLE_MAX_WAIT = 30
    emails = [f"g{i}@gmail.com" for i in range(7)] + ["a@example.org", "b@example.org"]
    campaign = _run(_campaign(emails))
    assert campaign.status == "sent"
    assert sorted(r for _t, r in sent_at) == sorted(emails)
    gmail = [t for t, r in sent_at if r.endswith("@gmail.com")]
    assert _max_in_any_window(gmail, 60) == 3
    # The other domain was not held back by gmail's limit.
    others = [t for t, r in sent_at if r.endswith("@example.org")]
    assert max(others) == min(gmail)
    assert set(Message.objects.values_list("attempts", flat=True)) == {1}


def test_defaults_cover_the_large_providers(settings):
    from campaigns import conf

    rates = conf.domain_rates()
    for domain in ["gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com"]:
        assert rates[domain] > 0
    for domain in ["yahoo.com", "icloud.com", "mail.ru", "yandex.ru"]:
        assert rates[domain] > 0
    settings.MAILCENTER_DOMAIN_RATES = {"gmail.com": 0, "Example.COM": 7}
    rates = conf.domain_rates()
    assert rates["gmail.com"] == 0 and rates["example.com"] == 7


def test_sender_concurrency_waits_for_a_free_slot(settings, sent_at, clock, limiter):
    _sender(settings, concurrency=1)
    campaign = _campaign(["a@example.org", "b@example.org"])
    held = limiter.slot_acquire("sender:default", 1, ttl=600)
    assert services.campaign_send_batch(campaign.pk) is True  # waited briefly, more to do
    assert sent_at == []
    assert Message.objects.filter(status="queued").count() == 2
    limiter.slot_release("sender:default", held)
    campaign = _run(campaign)
    assert campaign.status == "sent"
    assert len(sent_at) == 2


def test_mx_domain_connections_are_capped(settings, clock, limiter):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "mx", "OPTIONS": {}}}
    settings.MAILCENTER_DOMAIN_CONNECTIONS = {"*": 1}
    campaign = _campaign(["a@example.org"])
    held = limiter.slot_acquire("domain-connections:example.org", 1, ttl=600)
    assert services.campaign_send_batch(campaign.pk) is True
    message = Message.objects.get()
    # Put back for a moment, unattempted: no connection was opened.
    assert message.status == "queued" and message.attempts == 0
    assert message.next_attempt_at is not None
    limiter.slot_release("domain-connections:example.org", held)


@pytest.mark.parametrize(
    "options",
    [{"rate": "fast"}, {"window": {"count": "many", "seconds": 60}}, {"window": ["x"]}],
)
def test_invalid_throttle_options_refuse_the_start(settings, options):
    from campaigns.services.common import CampaignError

    _sender(settings, **options)
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(email="a@example.org"))
    campaign = CampaignFactory(lists=[mailing_list])
    with pytest.raises(CampaignError, match="throttling settings"):
        services.campaign_start(campaign.pk)

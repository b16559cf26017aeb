from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import services
from campaigns.models import Campaign, Message
from contacts.models import Contact, Subscription
from mailcenter.delivery import Accepted, Deferred, Rejected
from mailcenter.models import OutboxMessage
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    MailingListFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


def _campaign_with(n: int, **kw) -> Campaign:
    mailing_list = MailingListFactory()
    for _ in range(n):
        SubscriptionFactory(mailing_list=mailing_list)
    return CampaignFactory(lists=[mailing_list], **kw)


def _start(campaign, django_capture_on_commit_callbacks, execute=False):
    with django_capture_on_commit_callbacks(execute=execute):
        services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def test_start_freezes_audience_and_excludes_suppressed(django_capture_on_commit_callbacks):
    campaign = _campaign_with(3)
    mailing_list = campaign.lists.get()
    SubscriptionFactory(
        mailing_list=mailing_list, contact=ContactFactory(status=Contact.Status.UNSUBSCRIBED)
    )
    SubscriptionFactory(mailing_list=mailing_list, contact=ContactFactory(status="bounced"))
    SubscriptionFactory(mailing_list=mailing_list, status=Subscription.Status.UNSUBSCRIBED)
    campaign = _start(campaign, django_capture_on_commit_callbacks)
    assert campaign.status == Campaign.Status.SENDING
    assert campaign.recipients_count == 3
    assert Message.objects.filter(campaign=campaign, status="queued").count() == 3
    # a contact added after the start is not part of this campaign
    SubscriptionFactory(mailing_list=mailing_list)
    assert Message.objects.filter(campaign=campaign).count() == 3


def test_start_freezes_each_recipient_with_the_field_defaults(django_capture_on_commit_callbacks):
    campaign = _campaign_with(4)
    contact_ids = sorted(campaign.lists.get().subscriptions.values_list("contact_id", flat=True))
    _start(campaign, django_capture_on_commit_callbacks)
    rows = list(Message.objects.filter(campaign=campaign).order_by("id").values())
    # one INSERT ... SELECT: in contact id order, every other column at its default
    assert [row["contact_id"] for row in rows] == contact_ids
    for row in rows:
        assert row["email"] == Contact.objects.get(pk=row["contact_id"]).email
        assert row["status"] == Message.Status.QUEUED
        assert (row["attempts"], row["claim_token"], row["last_reply"]) == (0, "", "")
        assert row["attempt_log"] == []
        assert row["claimed_at"] is row["sent_at"] is row["smtp_code"] is None


def test_start_refuses_an_empty_audience(django_capture_on_commit_callbacks):
    campaign = CampaignFactory(lists=[MailingListFactory()])
    with pytest.raises(services.CampaignError, match="no recipients"):
        services.campaign_start(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert not Message.objects.exists()


def test_start_refuses_unknown_sender_and_non_drafts(django_capture_on_commit_callbacks):
    campaign = _campaign_with(1, sender="nope")
    with pytest.raises(services.CampaignError, match="not configured"):
        services.campaign_start(campaign.pk)
    campaign = _start(_campaign_with(1), django_capture_on_commit_callbacks)
    with pytest.raises(services.CampaignError):
        services.campaign_start(campaign.pk)


def test_send_through_outbox_and_complete(django_capture_on_commit_callbacks, settings):
    settings.MAILCENTER_BATCH_SIZE = 2
    campaign = _start(_campaign_with(5), django_capture_on_commit_callbacks, execute=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert Message.objects.filter(campaign=campaign, status="sent").count() == 5
    assert OutboxMessage.objects.count() == 5
    raw = bytes(OutboxMessage.objects.first().raw)
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw


def test_a_duplicate_task_sends_nothing_again(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks, execute=True)
    assert OutboxMessage.objects.count() == 3
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)
    assert services.campaign_send_batch(campaign.pk) is False
    assert OutboxMessage.objects.count() == 3


def test_claims_are_exclusive(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(5), django_capture_on_commit_callbacks)
    _token_a, first = services.messages_claim(campaign.pk, 3)
    _token_b, second = services.messages_claim(campaign.pk, 3)
    assert len(first) == 3 and len(second) == 2
    assert not {m.pk for m in first} & {m.pk for m in second}
    assert services.messages_claim(campaign.pk, 3)[1] == []


def test_results_only_touch_rows_still_claimed(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(2), django_capture_on_commit_callbacks)
    token, claimed = services.messages_claim(campaign.pk, 2)
    ids = [m.pk for m in claimed]
    # the claim went stale and someone else took the first message and sent it
    Message.objects.filter(pk=ids[0]).update(claim_token="other", status="sent")
    services.messages_record_results(
        token, [Rejected(ref=str(ids[0]), code=550, reply="no"), Accepted(ref=str(ids[1]))]
    )
    assert Message.objects.get(pk=ids[0]).status == "sent"
    assert Message.objects.get(pk=ids[1]).status == "sent"


def test_stale_claims_are_released_but_sent_messages_never(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks)
    token, claimed = services.messages_claim(campaign.pk, 2)
    services.messages_record_results(token, [Accepted(ref=str(claimed[0].pk))])
    later = timezone.now() + timedelta(hours=1)
    assert services.messages_release_stale(later) == 1
    statuses = sorted(Message.objects.values_list("status", flat=True))
    assert statuses == ["queued", "queued", "sent"]


def test_deferred_and_rejected_results(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(2), django_capture_on_commit_callbacks)
    token, (a, b) = services.messages_claim(campaign.pk, 2)
    services.messages_record_results(
        token,
        [
            Deferred(ref=str(a.pk), code=451, reply="4.7.1 try later"),
            Rejected(ref=str(b.pk), code=550, reply="5.1.1 no such user", enhanced_status="5.1.1"),
        ],
    )
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == "deferred" and a.smtp_code == 451
    assert a.next_attempt_at > timezone.now() + timedelta(minutes=4)
    assert b.status == "failed" and b.enhanced_status == "5.1.1"
    # not due yet: nothing to claim; due later: claimed again
    assert services.messages_claim(campaign.pk, 5)[1] == []
    _token, again = services.messages_claim(campaign.pk, 5, now=timezone.now() + timedelta(hours=1))
    assert [m.pk for m in again] == [a.pk]


def test_pause_stops_the_next_batch_and_resume_finishes(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks)
    assert services.campaign_pause(campaign.pk)
    assert services.campaign_send_batch(campaign.pk) is False
    assert OutboxMessage.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert services.campaign_resume(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert OutboxMessage.objects.count() == 3


def test_cancel_skips_what_is_left(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks)
    assert services.campaign_cancel(campaign.pk)
    assert set(Message.objects.values_list("status", flat=True)) == {"skipped"}
    assert services.campaign_send_batch(campaign.pk) is False


def test_contact_unsubscribed_after_start_is_skipped(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(2), django_capture_on_commit_callbacks)
    first = Message.objects.filter(campaign=campaign).first()
    Contact.objects.filter(pk=first.contact_id).update(status=Contact.Status.UNSUBSCRIBED)
    while services.campaign_send_batch(campaign.pk):
        pass
    first.refresh_from_db()
    assert first.status == "skipped"
    assert OutboxMessage.objects.count() == 1


def test_smtp_replies_map_to_statuses(django_capture_on_commit_callbacks, smtp_sender):
    campaign = _campaign_with(3)
    emails = list(campaign.lists.get().contacts.order_by("id").values_list("email", flat=True))
    smtp_sender.handler.replies = {
        emails[0]: "550 5.1.1 No such user",
        emails[1]: "451 4.7.1 Greylisted, try again later",
    }
    campaign = _start(campaign, django_capture_on_commit_callbacks, execute=True)
    by_email = {m.email: m for m in Message.objects.filter(campaign=campaign)}
    assert by_email[emails[0]].status == "failed"
    assert by_email[emails[0]].enhanced_status == "5.1.1"
    assert by_email[emails[1]].status == "deferred"
    assert by_email[emails[2]].status == "sent"
    assert [r.rcpt_tos for r in smtp_sender.received] == [[emails[2]]]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING  # waits for the deferred retry


def test_tick_restarts_a_campaign_whose_tasks_were_lost(django_capture_on_commit_callbacks):
    # campaign_start's tasks are never run here: as if the broker lost them
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.campaigns_tick() == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert OutboxMessage.objects.count() == 3


def test_tick_leaves_a_busy_campaign_alone_and_releases_dead_claims(
    django_capture_on_commit_callbacks,
):
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks)
    services.messages_claim(campaign.pk, 1)  # a live worker holds one message
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.campaigns_tick() == 0
    assert callbacks == []
    # ten minutes later that worker is presumed dead: its claim is released and resent
    later = timezone.now() + timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.campaigns_tick(now=later) == 1
    assert Message.objects.filter(campaign=campaign, status="sent").count() == 3
    assert OutboxMessage.objects.count() == 3


def test_dead_claims_of_a_cancelled_campaign_are_closed(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(2), django_capture_on_commit_callbacks)
    services.messages_claim(campaign.pk, 1)
    services.campaign_cancel(campaign.pk)
    services.messages_release_stale(timezone.now() + timedelta(hours=1))
    assert set(Message.objects.values_list("status", flat=True)) == {"skipped"}


def test_a_held_back_queued_message_waits_and_keeps_the_campaign_open(
    django_capture_on_commit_callbacks,
):
    campaign = _start(_campaign_with(2), django_capture_on_commit_callbacks)
    held, free = Message.objects.filter(campaign=campaign).order_by("id")
    later = timezone.now() + timedelta(minutes=5)
    Message.objects.filter(pk=held.pk).update(next_attempt_at=later)  # its domain slowed down
    _token, claimed = services.messages_claim(campaign.pk, 10)
    assert [m.pk for m in claimed] == [free.pk]
    assert not services.campaign_finish_if_done(campaign.pk)
    _token, claimed = services.messages_claim(campaign.pk, 10, now=later)
    assert [m.pk for m in claimed] == [held.pk]


def test_every_result_is_kept_on_its_message(django_capture_on_commit_callbacks):
    campaign = _start(_campaign_with(3), django_capture_on_commit_callbacks)
    token, (a, b, c) = services.messages_claim(campaign.pk, 3)
    services.messages_record_results(
        token,
        [
            Accepted(ref=str(a.pk), code=250, reply="2.0.0 Ok: queued as 4XyZ"),
            Accepted(ref=str(b.pk), code=250, reply="2.0.0 Ok: queued as 5AbC"),
            Deferred(ref=str(c.pk), code=451, reply="4.7.1 later"),
        ],
    )
    a.refresh_from_db()
    b.refresh_from_db()
    c.refresh_from_db()
    # the accepted attempt is the last reply; failed and deferred ones are in the log
    assert (a.status, a.smtp_code, a.last_reply) == ("sent", 250, "2.0.0 Ok: queued as 4XyZ")
    assert b.last_reply == "2.0.0 Ok: queued as 5AbC" and b.enhanced_status == "2.0.0"
    assert a.attempt_log == [] and a.first_attempt_at == a.sent_at
    assert [(x["code"], x["reply"]) for x in c.attempt_log] == [(451, "4.7.1 later")]
    # a later success keeps the earlier attempts
    token, (again,) = services.messages_claim(
        campaign.pk, 3, now=timezone.now() + timedelta(hours=1)
    )
    services.messages_record_results(token, [Accepted(ref=str(again.pk), reply="2.0.0 ok")])
    c.refresh_from_db()
    assert c.status == "sent" and c.attempts == 2 and len(c.attempt_log) == 1

"""Sending: starting, the send loop, pause/resume/cancel, the periodic tick, test sends.

The send loop follows one rule: never hold a transaction while talking to a mail server.
A batch is claimed in one short transaction (status queued → sending, stamped with a claim
token), sent outside any transaction, and its results recorded in a second short
transaction that only touches rows still carrying that token. A message that is ``sent`` is
never claimed again, so a duplicate task or a restarted worker cannot send it twice; a claim
left behind by a killed worker is released after ``MAILCENTER_CLAIM_TIMEOUT`` seconds, and
only those in-flight messages can be sent twice.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import rendering
from campaigns.models import Campaign, CampaignLink, Message
from campaigns.selectors import campaign_audience
from campaigns.services.common import CampaignError
from contacts.models import Contact
from mailcenter.delivery import (
    Accepted,
    Deferred,
    DeliveryError,
    OutgoingMessage,
    Rejected,
    Result,
    UnknownSender,
    get_backend,
)

log = logging.getLogger(__name__)

# Greylisting retries after minutes, so do we: 5 min, 10, 20, ... capped at 4 h.
RETRY_BASE_SECONDS = 300
RETRY_MAX_SECONDS = 4 * 3600
MAX_ATTEMPTS = 8
# A sending campaign none of whose messages was claimed for this long has lost its task
# chains (broker restart, killed worker) and is restarted by the periodic tick.
TICK_IDLE_SECONDS = 60


def _enqueue_batches(campaign_id: int, count: int) -> None:
    from campaigns.tasks import campaign_send_batch_task

    for _n in range(count):
        transaction.on_commit(lambda: campaign_send_batch_task.delay(campaign_id))


def campaign_start(campaign_id: int) -> Campaign:
    """Freeze the audience into Message rows and queue the send tasks.

    Locks the campaign row for the duration; raises CampaignError when the campaign is not
    a draft, its content does not compile, its sender is unknown or nobody would get it.
    """
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            raise CampaignError(_("Only a draft campaign can be sent."))
        try:
            get_backend(campaign.sender)
        except UnknownSender:
            raise CampaignError(
                _("The sender “%(name)s” is not configured.") % {"name": campaign.sender}
            ) from None
        try:
            rendering.validate_content(campaign.subject, campaign.html)
        except rendering.TemplateError as exc:
            raise CampaignError(str(exc)) from None
        _source, links = rendering.extract_links(campaign.html)
        CampaignLink.objects.filter(campaign=campaign).delete()
        CampaignLink.objects.bulk_create(
            CampaignLink(campaign=campaign, index=i, url=url) for i, url in enumerate(links)
        )
        total = 0
        batch: list[Message] = []
        audience = campaign_audience(campaign).order_by("id").values_list("id", "email")
        for contact_id, email in audience.iterator(chunk_size=5000):
            batch.append(Message(campaign_id=campaign.pk, contact_id=contact_id, email=email))
            if len(batch) >= 5000:
                Message.objects.bulk_create(batch)
                total += len(batch)
                batch = []
        if batch:
            Message.objects.bulk_create(batch)
            total += len(batch)
        if not total:
            raise CampaignError(
                _("This campaign has no recipients: its lists have no active subscribers.")
            )
        campaign.status = Campaign.Status.SENDING
        campaign.started_at = timezone.now()
        campaign.recipients_count = total
        campaign.save(update_fields=["status", "started_at", "recipients_count", "updated_at"])
        _enqueue_batches(campaign.pk, settings.MAILCENTER_SEND_CONCURRENCY)
    return campaign


def campaign_pause(campaign_id: int) -> bool:
    """Stop after the batches in flight; the next claim sees the flag. Idempotent."""
    return bool(
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.PAUSED
        )
    )


def campaign_resume(campaign_id: int) -> bool:
    with transaction.atomic():
        changed = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.PAUSED).update(
            status=Campaign.Status.SENDING
        )
        if changed:
            _enqueue_batches(campaign_id, settings.MAILCENTER_SEND_CONCURRENCY)
    return bool(changed)


def campaign_cancel(campaign_id: int) -> bool:
    """Cancel sending: queued and deferred messages are skipped, sent ones stay sent."""
    with transaction.atomic():
        changed = Campaign.objects.filter(
            pk=campaign_id, status__in=[Campaign.Status.SENDING, Campaign.Status.PAUSED]
        ).update(status=Campaign.Status.CANCELLED, finished_at=timezone.now())
        if changed:
            Message.objects.filter(
                campaign_id=campaign_id,
                status__in=[Message.Status.QUEUED, Message.Status.DEFERRED],
            ).update(status=Message.Status.SKIPPED, last_reply="campaign cancelled")
    return bool(changed)


def messages_claim(
    campaign_id: int, size: int, now: datetime | None = None
) -> tuple[str, list[Message]]:
    """Atomically claim up to ``size`` due messages of a sending campaign.

    Safe with any number of concurrent workers: rows are skipped when locked (PostgreSQL)
    and the claiming UPDATE re-checks the status, so two claimers never get the same row.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    due = Q(status=Message.Status.QUEUED) | Q(
        status=Message.Status.DEFERRED, next_attempt_at__lte=now
    )
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).exists():
            return token, []
        candidates = Message.objects.filter(due, campaign_id=campaign_id).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("id", flat=True)[:size])
        if not ids:
            return token, []
        Message.objects.filter(due, id__in=ids).update(
            status=Message.Status.SENDING,
            claim_token=token,
            claimed_at=now,
            attempts=F("attempts") + 1,
        )
    claimed = list(
        Message.objects.filter(claim_token=token, status=Message.Status.SENDING).select_related(
            "contact"
        )
    )
    return token, claimed


def messages_release_stale(now: datetime | None = None) -> int:
    """Put claims older than the claim timeout back in the queue (their worker died)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.MAILCENTER_CLAIM_TIMEOUT)
    stale = Message.objects.filter(status=Message.Status.SENDING, claimed_at__lt=cutoff)
    # A cancelled campaign's dead claims are closed, not queued again for nobody to send.
    stale.filter(campaign__status=Campaign.Status.CANCELLED).update(
        status=Message.Status.SKIPPED, claim_token="", last_reply="campaign cancelled"
    )
    return stale.exclude(campaign__status=Campaign.Status.CANCELLED).update(
        status=Message.Status.QUEUED, claim_token=""
    )


@lru_cache(maxsize=16)
def _compiled(campaign_id: int, updated_at: datetime) -> rendering.CompiledCampaign:
    # Keyed by updated_at, so an edited campaign is compiled afresh; otherwise once per
    # campaign per worker process.
    return rendering.compile_campaign(Campaign.objects.get(pk=campaign_id))


def _retry_delay(attempts: int) -> int:
    return min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS)


def messages_record_results(token: str, results: list[Result], now: datetime | None = None) -> None:
    """Store each result on its message, touching only rows still under ``token``."""
    now = now or timezone.now()
    accepted = [int(r.ref) for r in results if isinstance(r, Accepted)]
    others = {int(r.ref): r for r in results if not isinstance(r, Accepted)}
    with transaction.atomic():
        if accepted:
            Message.objects.filter(
                claim_token=token, status=Message.Status.SENDING, id__in=accepted
            ).update(status=Message.Status.SENT, sent_at=now, smtp_code=250, last_reply="")
        if not others:
            return
        rows = list(
            Message.objects.filter(
                claim_token=token, status=Message.Status.SENDING, id__in=list(others)
            )
        )
        for row in rows:
            result = others[row.pk]
            row.last_reply = result.reply[:2000]
            row.smtp_code = result.code
            if isinstance(result, Rejected):
                row.status = Message.Status.FAILED
                row.enhanced_status = result.enhanced_status
            elif isinstance(result, Deferred) and row.attempts < MAX_ATTEMPTS:
                row.status = Message.Status.DEFERRED
                delay = result.retry_after or _retry_delay(row.attempts)
                row.next_attempt_at = now + timedelta(seconds=delay)
            else:
                row.status = Message.Status.FAILED
        Message.objects.bulk_update(
            rows, ["status", "last_reply", "smtp_code", "enhanced_status", "next_attempt_at"]
        )


def _outgoing(compiled: rendering.CompiledCampaign, message: Message) -> OutgoingMessage:
    contact = message.contact
    rendered = rendering.render_message(
        compiled,
        rendering.contact_context(
            message.email, contact.first_name, contact.last_name, contact.attributes
        ),
        message.pk,
    )
    raw = rendering.build_mime(
        compiled,
        rendered,
        message.email,
        message_id_value=rendering.message_id_header(
            compiled.campaign_id, message.pk, compiled.domain
        ),
    )
    return OutgoingMessage(
        ref=str(message.pk),
        recipient=message.email,
        return_path=rendering.return_path(message.pk),
        from_email=compiled.from_email,
        subject=rendered.subject,
        raw=raw,
        headers=rendered.headers,
        html=rendered.html,
        text=rendered.text,
    )


def campaign_send_batch(campaign_id: int, size: int | None = None) -> bool:
    """Claim, render, send and record one batch. Return True if more work may remain."""
    size = size or settings.MAILCENTER_BATCH_SIZE
    token, claimed = messages_claim(campaign_id, size)
    if not claimed:
        campaign_finish_if_done(campaign_id)
        return False
    campaign = Campaign.objects.get(pk=campaign_id)
    compiled = _compiled(campaign.pk, campaign.updated_at)
    outgoing: list[OutgoingMessage] = []
    results: list[Result] = []
    for message in claimed:
        if message.contact.status != Contact.Status.ACTIVE:
            # Suppressed since the campaign started (unsubscribed, bounced, complained).
            results.append(Rejected(ref=str(message.pk), code=0, reply="suppressed"))
            continue
        try:
            outgoing.append(_outgoing(compiled, message))
        except Exception as exc:  # a bad attribute value must not sink the batch
            log.warning("render failed for message %s: %s", message.pk, exc)
            results.append(Rejected(ref=str(message.pk), code=0, reply=f"render error: {exc}"))
    if outgoing:
        try:
            with get_backend(campaign.sender) as backend:
                results.extend(backend.send_batch(outgoing))
        except (DeliveryError, UnknownSender) as exc:
            log.warning("campaign %s: batch deferred: %s", campaign_id, exc)
            results.extend(Deferred(ref=m.ref, code=None, reply=str(exc)) for m in outgoing)
    suppressed = [
        int(r.ref) for r in results if isinstance(r, Rejected) and r.reply == "suppressed"
    ]
    messages_record_results(token, [r for r in results if int(r.ref) not in suppressed])
    if suppressed:
        Message.objects.filter(claim_token=token, id__in=suppressed).update(
            status=Message.Status.SKIPPED, last_reply="suppressed"
        )
    return True


def campaign_finish_if_done(campaign_id: int) -> bool:
    """Mark a sending campaign sent once no message is queued, in flight or deferred."""
    pending = Message.objects.filter(
        campaign_id=campaign_id,
        status__in=[Message.Status.QUEUED, Message.Status.SENDING, Message.Status.DEFERRED],
    ).exists()
    if pending:
        return False
    return bool(
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.SENT, finished_at=timezone.now()
        )
    )


def campaigns_tick(now: datetime | None = None) -> int:
    """Periodic: release stale claims, and restart sending campaigns that have due work.

    This is what resumes a campaign after a broker restart or a lost task. Enqueuing
    extra tasks is harmless: claims are atomic.
    """
    now = now or timezone.now()
    messages_release_stale(now)
    due = Q(status=Message.Status.QUEUED) | Q(
        status=Message.Status.DEFERRED, next_attempt_at__lte=now
    )
    started = 0
    for campaign_id in Campaign.objects.filter(status=Campaign.Status.SENDING).values_list(
        "id", flat=True
    ):
        busy = Message.objects.filter(
            campaign_id=campaign_id, claimed_at__gte=now - timedelta(seconds=TICK_IDLE_SECONDS)
        ).exists()
        if busy:
            continue  # its task chains are alive; more of them would only crowd the queue
        if Message.objects.filter(due, campaign_id=campaign_id).exists():
            with transaction.atomic():
                _enqueue_batches(campaign_id, settings.MAILCENTER_SEND_CONCURRENCY)
            started += 1
        else:
            campaign_finish_if_done(campaign_id)
    return started


def campaign_send_test(campaign: Campaign, email: str) -> Result:
    """Send the campaign as it stands to one address, untracked, subject marked [Test].

    Uses the first subscriber's data for personalisation when there is one, so the test
    looks like a real message.
    """
    compiled = rendering.compile_campaign(campaign, track=False)
    sample = campaign_audience(campaign).first() if campaign.pk else None
    contact = (
        rendering.contact_context(
            sample.email, sample.first_name, sample.last_name, sample.attributes
        )
        if sample
        else rendering.contact_context(email)
    )
    rendered = rendering.render_message(compiled, contact, None)
    rendered = rendering.RenderedMessage(
        subject=_("[Test] %(subject)s") % {"subject": rendered.subject},
        html=rendered.html,
        text=rendered.text,
        headers={rendering.HEADER_CAMPAIGN: str(campaign.pk or 0)},
    )
    raw = rendering.build_mime(
        compiled, rendered, email, message_id_value=f"<test.{uuid.uuid4().hex}@{compiled.domain}>"
    )
    outgoing = OutgoingMessage(
        ref="test",
        recipient=email,
        return_path=campaign.from_email,
        from_email=campaign.from_email,
        subject=rendered.subject,
        raw=raw,
        html=rendered.html,
        text=rendered.text,
    )
    try:
        with get_backend(campaign.sender) as backend:
            return backend.send_batch([outgoing])[0]
    except (DeliveryError, UnknownSender) as exc:
        return Deferred(ref="test", code=None, reply=str(exc))

"""Celery entry points for tracking: the writer that empties the hit queue."""

from __future__ import annotations

from celery import shared_task

from tracking.webhooks.tasks import webhooks_deliver_task  # noqa: F401 - found by autodiscovery


@shared_task(ignore_result=True)
def hits_drain_task() -> None:
    from tracking.queue import hits_drain

    # Bounded, so a flood is written by several short tasks rather than one endless one.
    hits_drain(max_batches=50)


@shared_task(ignore_result=True)
def bounce_mailbox_poll_task() -> None:
    import logging

    from tracking.mailbox import MailboxError, bounce_mailbox_poll

    try:
        bounce_mailbox_poll()
    except MailboxError as exc:
        # Wrong password, server down: said in one line, retried at the next beat.
        logging.getLogger(__name__).error("bounce mailbox: %s", exc)


@shared_task(ignore_result=True)
def campaign_report_counts_task(campaign_id: int) -> None:
    from campaigns.models import Campaign
    from tracking.services import domain_stats_refresh, message_stats_refresh

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        domain_stats_refresh(campaign)
        message_stats_refresh([campaign])

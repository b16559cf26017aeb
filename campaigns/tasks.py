"""Celery entry points for sending: ids in, the work is in services."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def campaign_send_batch_task(campaign_id: int) -> None:
    from campaigns.services import campaign_send_batch

    # One batch per task, then hand over to a fresh task: a pause or a cancel takes effect
    # at the next claim, and a worker restart loses at most one batch of claims.
    if campaign_send_batch(campaign_id):
        campaign_send_batch_task.delay(campaign_id)


@shared_task
def campaigns_tick() -> None:
    from campaigns.services import campaigns_tick as tick

    tick()

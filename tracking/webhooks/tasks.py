"""Celery entry point for outgoing webhooks (imported by tracking.tasks for discovery)."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True, name="tracking.webhooks.tasks.webhooks_deliver_task")
def webhooks_deliver_task() -> None:
    from tracking.webhooks.services import deliveries_send_due

    # Bounded: a backlog is worked off by the beat's next runs, not one endless task.
    deliveries_send_due(limit=200)

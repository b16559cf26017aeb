"""Writes for campaigns. ``sending`` holds the send loop and its rules; ``editing`` drafts."""

from campaigns.services.common import CampaignError
from campaigns.services.editing import (
    CAMPAIGN_EDITABLE_FIELDS,
    campaign_create,
    campaign_delete,
    campaign_update,
)
from campaigns.services.sending import (
    TICK_IDLE_SECONDS,
    campaign_autopause_check,
    campaign_cancel,
    campaign_finish_if_done,
    campaign_pause,
    campaign_resume,
    campaign_send_batch,
    campaign_send_test,
    campaign_start,
    campaigns_tick,
    messages_claim,
    messages_record_results,
    messages_release_stale,
)

__all__ = [
    "CAMPAIGN_EDITABLE_FIELDS",
    "TICK_IDLE_SECONDS",
    "CampaignError",
    "campaign_autopause_check",
    "campaign_cancel",
    "campaign_create",
    "campaign_delete",
    "campaign_finish_if_done",
    "campaign_pause",
    "campaign_resume",
    "campaign_send_batch",
    "campaign_send_test",
    "campaign_start",
    "campaign_update",
    "campaigns_tick",
    "messages_claim",
    "messages_record_results",
    "messages_release_stale",
]

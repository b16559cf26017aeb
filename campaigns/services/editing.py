"""Creating, editing and deleting draft campaigns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext as _

from campaigns import rendering
from campaigns.models import Campaign
from campaigns.services.common import CampaignError
from contacts.models import MailingList
from mailcenter.delivery import sender_names

# Forms and the API validate their input for the user's sake; these functions check again,
# because a campaign that reaches the send loop with broken content fails for every
# recipient at once.

CAMPAIGN_EDITABLE_FIELDS = frozenset(
    {
        "name",
        "subject",
        "from_name",
        "from_email",
        "reply_to",
        "html",
        "sender",
        "track_opens",
        "track_clicks",
    }
)


def _sender_or_default(sender: str | None) -> str:
    names = sender_names()
    if sender is None:
        return "default" if "default" in names or not names else names[0]
    if sender not in names:
        raise CampaignError(_("The sender “%(name)s” is not configured.") % {"name": sender})
    return sender


def campaign_create(
    *,
    name: str,
    subject: str,
    html: str,
    from_email: str,
    lists: Iterable[MailingList | int],
    from_name: str = "",
    reply_to: str = "",
    sender: str | None = None,
    track_opens: bool = True,
    track_clicks: bool = True,
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    """Create a draft.

    Raise ``rendering.TemplateError`` when the subject or body would not render and
    CampaignError for an unknown sender; ``sender=None`` picks the default one.
    """
    rendering.validate_content(subject, html)
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name,
            subject=subject,
            html=html,
            from_email=from_email,
            from_name=from_name,
            reply_to=reply_to,
            sender=_sender_or_default(sender),
            track_opens=track_opens,
            track_clicks=track_clicks,
            created_by=created_by,
        )
        campaign.lists.set(lists)
    return campaign


def campaign_update(
    campaign_id: int, *, lists: Iterable[MailingList | int] | None = None, **changes: Any
) -> Campaign:
    """Change a draft: any of ``CAMPAIGN_EDITABLE_FIELDS`` and the lists.

    Locks the campaign row so a concurrent start cannot freeze half-edited content; raises
    CampaignError when the campaign is no longer a draft or the sender is unknown, and
    ``rendering.TemplateError`` when the resulting content would not render.
    """
    unknown = set(changes) - CAMPAIGN_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"campaign_update() got unknown fields: {sorted(unknown)}")
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            raise CampaignError(
                _("Only a draft campaign can be edited; this one is %(status)s.")
                % {"status": campaign.get_status_display().lower()}
            )
        if "sender" in changes:
            changes["sender"] = _sender_or_default(changes["sender"])
        for field, value in changes.items():
            setattr(campaign, field, value)
        rendering.validate_content(campaign.subject, campaign.html)
        campaign.save(update_fields=[*changes, "updated_at"])
        if lists is not None:
            campaign.lists.set(lists)
    return campaign


def campaign_delete(campaign_id: int) -> None:
    """Delete a draft; raise CampaignError for any other status, whose records are history."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            raise CampaignError(_("Only a draft campaign can be deleted."))
        campaign.delete()

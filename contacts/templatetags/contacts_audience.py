"""``{% campaign_audience_form campaign %}``: the segments-and-exclusions card of a campaign.

A tag rather than view context so the campaign editor can show it without the campaigns
views knowing about segments.
"""

from __future__ import annotations

from typing import Any

from django import template

from contacts.forms import CampaignAudienceForm

register = template.Library()


@register.inclusion_tag("contacts/_campaign_audience.html", takes_context=True)
def campaign_audience_form(context: Any, campaign: Any) -> dict[str, Any]:
    form = CampaignAudienceForm(initial=CampaignAudienceForm.initial_for(campaign))
    return {"campaign": campaign, "form": form, "csrf_token": context.get("csrf_token")}

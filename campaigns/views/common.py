"""Helpers shared by the campaign pages."""

from __future__ import annotations

from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from campaigns.models import Campaign


def detail_redirect(campaign: Campaign) -> HttpResponseRedirect:
    return redirect("campaigns:detail", pk=campaign.pk)


def report_url(campaign: Campaign) -> str | None:
    # The reports app provides this page; until it does, the link is simply left out.
    try:
        return reverse("reports:campaign", args=[campaign.pk])
    except NoReverseMatch:
        return None


def status_params(campaign: Campaign) -> dict[str, str]:
    return {"name": campaign.name, "status": campaign.get_status_display().lower()}

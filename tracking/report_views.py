"""Marketer-facing reports (behind login, like every page outside the public endpoints)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.views.generic import ListView, TemplateView

from campaigns.models import Campaign
from tracking.selectors import campaign_link_stats, campaign_stats, campaigns_overview


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


class ReportIndexView(ListView):
    template_name = "tracking/report_index.html"
    paginate_by = 25
    context_object_name = "campaigns"

    def get_queryset(self):
        return campaigns_overview()


class CampaignReportView(TemplateView):
    template_name = "tracking/report_campaign.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaign = get_object_or_404(Campaign, pk=kwargs["pk"])
        stats = campaign_stats(campaign)
        context.update(
            campaign=campaign,
            stats=stats,
            links=campaign_link_stats(campaign),
            open_rate=_rate(stats["opens_unique"], stats["sent"]),
            click_rate=_rate(stats["clicks_unique"], stats["sent"]),
            click_to_open=_rate(stats["clicks_unique"], stats["opens_unique"]),
            unsubscribe_rate=_rate(stats["unsubscribes"], stats["sent"]),
        )
        return context

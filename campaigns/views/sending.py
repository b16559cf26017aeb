"""Starting a send, watching it, and pausing, resuming or cancelling it."""

from __future__ import annotations

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View
from django.views.generic import DetailView, ListView

from campaigns.models import Campaign, Message
from campaigns.selectors import campaign_audience_count, campaign_messages, campaign_progress
from campaigns.services import (
    CampaignError,
    campaign_cancel,
    campaign_pause,
    campaign_resume,
    campaign_start,
)
from campaigns.views.common import detail_redirect, status_params


class CampaignProgressView(View):
    def get(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        return JsonResponse(
            {
                **campaign_progress(campaign),
                "running": campaign.status == Campaign.Status.SENDING,
                "pause_reason": campaign.pause_reason,
            }
        )


class CampaignMessagesView(ListView):
    """The campaign's messages by status, each with its last reply and attempt history."""

    paginate_by = 50
    template_name = "campaigns/campaign_messages.html"
    context_object_name = "messages_page"

    def get_queryset(self):
        self.campaign = get_object_or_404(Campaign, pk=self.kwargs["pk"])
        self.status = self.request.GET.get("status", "")
        if self.status not in Message.Status.values:
            self.status = ""
        self.query = self.request.GET.get("q", "").strip()
        return campaign_messages(self.campaign, self.status, self.query)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        progress = campaign_progress(self.campaign)
        context.update(
            campaign=self.campaign,
            status=self.status,
            q=self.query,
            statuses=[
                (value, label, progress.get(value, 0) if value != "queued" else None)
                for value, label in Message.Status.choices
            ],
        )
        return context


class CampaignSendView(DetailView):
    """GET asks for confirmation with the recipient count; POST starts sending."""

    model = Campaign
    template_name = "campaigns/campaign_send.html"
    context_object_name = "campaign"

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        if self.object.status != Campaign.Status.DRAFT:
            messages.info(
                request,
                _("“%(name)s” is already %(status)s.") % status_params(self.object),
            )
            return detail_redirect(self.object)
        context = self.get_context_data(
            object=self.object, audience_count=campaign_audience_count(self.object)
        )
        return self.render_to_response(context)

    def post(self, request, *args, **kwargs):
        campaign = self.get_object()
        try:
            campaign = campaign_start(campaign.pk)
        except CampaignError as exc:
            messages.error(request, str(exc))
            return detail_redirect(campaign)
        count = campaign.recipients_count
        messages.success(
            request,
            ngettext(
                "Sending “%(name)s” to %(count)s recipient.",
                "Sending “%(name)s” to %(count)s recipients.",
                count,
            )
            % {"name": campaign.name, "count": count},
        )
        return detail_redirect(campaign)


class _CampaignActionView(View):
    """POST-only status change; the service returns False when there was nothing to do."""

    http_method_names = ["post"]

    def act(self, campaign_id: int) -> bool:
        raise NotImplementedError

    def done_message(self, campaign: Campaign) -> str:
        raise NotImplementedError

    def noop_message(self, campaign: Campaign) -> str:
        raise NotImplementedError

    def post(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        if self.act(campaign.pk):
            messages.success(request, self.done_message(campaign))
        else:
            campaign.refresh_from_db(fields=["status"])
            messages.info(request, self.noop_message(campaign))
        return detail_redirect(campaign)


class CampaignPauseView(_CampaignActionView):
    def act(self, campaign_id: int) -> bool:
        return campaign_pause(campaign_id)

    def done_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is paused; messages already handed over still go out.") % {
            "name": campaign.name
        }

    def noop_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is %(status)s, so there is nothing to pause.") % status_params(
            campaign
        )


class CampaignResumeView(_CampaignActionView):
    def act(self, campaign_id: int) -> bool:
        return campaign_resume(campaign_id)

    def done_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is sending again.") % {"name": campaign.name}

    def noop_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is %(status)s, not paused, so there is nothing to resume.") % (
            status_params(campaign)
        )


class CampaignCancelView(_CampaignActionView):
    def act(self, campaign_id: int) -> bool:
        return campaign_cancel(campaign_id)

    def done_message(self, campaign: Campaign) -> str:
        return _("“%(name)s” is cancelled; messages not yet sent will not be sent.") % {
            "name": campaign.name
        }

    def noop_message(self, campaign: Campaign) -> str:
        return _(
            "“%(name)s” is %(status)s; only a sending or paused campaign can be cancelled."
        ) % (status_params(campaign))

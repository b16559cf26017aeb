"""Listing, writing, reading and deleting campaigns."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.generic import DetailView, FormView, ListView

from campaigns import rendering
from campaigns.forms import CampaignForm, SendTestForm
from campaigns.models import Campaign
from campaigns.selectors import campaign_audience_count, campaign_progress
from campaigns.services import (
    CAMPAIGN_EDITABLE_FIELDS,
    CampaignError,
    campaign_create,
    campaign_delete,
    campaign_update,
)
from campaigns.views.common import detail_redirect, report_url, status_params

# Statuses during which the detail page shows the live progress bar.
PROGRESS_STATUSES = (Campaign.Status.SENDING, Campaign.Status.PAUSED)


class CampaignListView(ListView):
    model = Campaign
    paginate_by = 25
    template_name = "campaigns/campaign_list.html"
    context_object_name = "campaigns"

    def get_queryset(self):
        qs = Campaign.objects.order_by("-id")
        query = self.request.GET.get("q", "").strip()
        if query:
            qs = qs.filter(Q(name__icontains=query) | Q(subject__icontains=query))
        return qs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["q"] = self.request.GET.get("q", "")
        return context


class _CampaignFormView(FormView):
    form_class = CampaignForm
    template_name = "campaigns/campaign_form.html"

    @staticmethod
    def _fields(form: CampaignForm) -> dict[str, Any]:
        return {name: form.cleaned_data[name] for name in CAMPAIGN_EDITABLE_FIELDS}


class CampaignCreateView(_CampaignFormView):
    def form_valid(self, form):
        try:
            campaign = campaign_create(
                **self._fields(form),
                lists=form.cleaned_data["lists"],
                created_by=self.request.user,
            )
        except CampaignError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        except rendering.TemplateError as exc:
            form.add_error("html", str(exc))
            return self.form_invalid(form)
        messages.success(self.request, _("Campaign “%(name)s” created.") % {"name": campaign.name})
        return detail_redirect(campaign)


class CampaignUpdateView(_CampaignFormView):
    def dispatch(self, request, *args, **kwargs):
        self.campaign = get_object_or_404(Campaign, pk=kwargs["pk"])
        if self.campaign.status != Campaign.Status.DRAFT:
            messages.error(
                request,
                _("Only a draft can be edited; “%(name)s” is %(status)s.")
                % status_params(self.campaign),
            )
            return detail_redirect(self.campaign)
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "instance": self.campaign}

    def get_context_data(self, **kwargs):
        return super().get_context_data(campaign=self.campaign, **kwargs)

    def form_valid(self, form):
        try:
            campaign = campaign_update(
                self.campaign.pk, lists=form.cleaned_data["lists"], **self._fields(form)
            )
        except CampaignError as exc:
            # Started or changed in another tab since the form was opened.
            messages.error(self.request, str(exc))
            return detail_redirect(self.campaign)
        except rendering.TemplateError as exc:
            form.add_error("html", str(exc))
            return self.form_invalid(form)
        messages.success(self.request, _("Campaign “%(name)s” saved.") % {"name": campaign.name})
        return detail_redirect(campaign)


class CampaignDetailView(DetailView):
    model = Campaign
    template_name = "campaigns/campaign_detail.html"
    context_object_name = "campaign"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaign = self.object
        context["audience_count"] = campaign_audience_count(campaign)
        context["show_progress"] = campaign.status in PROGRESS_STATUSES
        if campaign.status != Campaign.Status.DRAFT:
            context["progress"] = campaign_progress(campaign)
        context["test_form"] = SendTestForm(initial={"email": self.request.user.email})
        context["report_url"] = report_url(campaign)
        context["lists"] = campaign.lists.order_by("name")
        return context


class CampaignDeleteView(DetailView):
    model = Campaign
    template_name = "campaigns/campaign_confirm_delete.html"
    context_object_name = "campaign"

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        if self.object.status != Campaign.Status.DRAFT:
            messages.error(request, _("Only a draft campaign can be deleted."))
            return detail_redirect(self.object)
        return self.render_to_response(self.get_context_data(object=self.object))

    def post(self, request, *args, **kwargs):
        campaign = self.get_object()
        try:
            campaign_delete(campaign.pk)
        except CampaignError as exc:
            messages.error(request, str(exc))
            return detail_redirect(campaign)
        messages.success(request, _("Campaign “%(name)s” deleted.") % {"name": campaign.name})
        return redirect("campaigns:list")

"""The preview page, the sandboxed message it frames, and test sends."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.generic import DetailView

from campaigns.forms import SendTestForm
from campaigns.models import Campaign
from campaigns.selectors import (
    campaign_preview,
    campaign_preview_contact,
    campaign_preview_contacts,
)
from campaigns.services import campaign_send_test
from campaigns.views.common import detail_redirect
from mailcenter.delivery import Accepted, Deferred
from mailcenter.views import SANDBOX_CSP

log = logging.getLogger(__name__)


class CampaignPreviewView(DetailView):
    model = Campaign
    template_name = "campaigns/campaign_preview.html"
    context_object_name = "campaign"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaign = self.object
        query = self.request.GET.get("q", "").strip()[:254]
        contacts = campaign_preview_contacts(campaign, query)
        if query and not contacts:
            messages.info(
                self.request, _("No recipient has an address containing “%(q)s”.") % {"q": query}
            )
        raw_id = self.request.GET.get("contact", "").strip()
        contact = campaign_preview_contact(campaign, raw_id) if raw_id else None
        if raw_id and contact is None:
            messages.warning(
                self.request,
                _("That contact is not a recipient of this campaign; showing another."),
            )
        if contact is None and contacts:
            contact = contacts[0]
        if contact is not None and contact not in contacts:
            contacts = [contact, *contacts]
        try:
            context["rendered"] = campaign_preview(campaign, contact)
        except Exception as exc:  # user content: show the problem, do not fail the page
            log.info("preview of campaign %s failed: %s", campaign.pk, exc)
            context["render_error"] = str(exc)
        html_url = reverse("campaigns:preview-html", args=[campaign.pk])
        # Not "contact": that is the campaign template's own variable.
        context.update(
            q=query,
            recipients=contacts,
            recipient=contact,
            html_url=f"{html_url}?contact={contact.pk}" if contact else html_url,
            test_form=SendTestForm(initial={"email": self.request.user.email}),
        )
        return context


@method_decorator(xframe_options_sameorigin, name="dispatch")
class CampaignPreviewHtmlView(View):
    """The rendered body alone, for the preview page's sandboxed iframe.

    Campaign HTML is untrusted: SANDBOX_CSP puts it in an opaque origin without scripts, so
    it cannot act with the viewer's session even when opened outside the iframe.
    """

    def get(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        contact = campaign_preview_contact(campaign, request.GET.get("contact"))
        try:
            body = campaign_preview(campaign, contact).html
        except Exception as exc:  # user content: show the problem inside the frame
            body = format_html(
                "<p>{}</p>", _("This message cannot be rendered: %(error)s") % {"error": exc}
            )
        response = HttpResponse(body)
        response["Content-Security-Policy"] = SANDBOX_CSP
        return response


class CampaignSendTestView(View):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        form = SendTestForm(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(form.errors["email"]))
            return self._back(campaign)
        email = form.cleaned_data["email"]
        try:
            result = campaign_send_test(campaign, email)
        except Exception as exc:  # content that does not render for the sample recipient
            log.info("test send of campaign %s failed: %s", campaign.pk, exc)
            messages.error(request, _("The test could not be built: %(error)s") % {"error": exc})
            return self._back(campaign)
        if isinstance(result, Accepted):
            messages.success(request, _("Test sent to %(email)s.") % {"email": email})
        elif isinstance(result, Deferred):
            messages.error(
                request,
                _("The test to %(email)s was not sent; the server said: %(reply)s")
                % {"email": email, "reply": result.reply or _("no reply")},
            )
        else:
            messages.error(
                request,
                _("The server refused the test to %(email)s: %(reply)s")
                % {"email": email, "reply": f"{result.code or ''} {result.reply}".strip()},
            )
        return self._back(campaign)

    def _back(self, campaign: Campaign) -> HttpResponseRedirect:
        target = self.request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(
            target,
            allowed_hosts={self.request.get_host()},
            require_https=self.request.is_secure(),
        ):
            return HttpResponseRedirect(target)
        return detail_redirect(campaign)

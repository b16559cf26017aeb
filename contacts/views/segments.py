"""Segment pages, the live count the rule builder calls, and campaign audiences."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import FormView, ListView

from contacts import segments, selectors, services
from contacts.forms import (
    CampaignAudienceForm,
    SegmentForm,
)
from contacts.models import (
    CustomField,
    MailingList,
    Segment,
)
from contacts.services import fields as fields_service
from contacts.views.common import add_errors

# How many of the latest campaigns the builder's campaign menus offer.
BUILDER_CAMPAIGNS = 500


def segment_builder_config(rules: dict | None = None) -> dict:
    """What the rule builder needs to draw its menus: fields, operators, lists, campaigns.

    The menu holds the latest campaigns plus any that ``rules`` names, so a segment saved
    from an older campaign's report still shows (and keeps) its campaign.
    """
    from campaigns.models import Campaign

    named = segments.rules_campaign_ids(rules or {})
    latest = set(Campaign.objects.order_by("-id").values_list("pk", flat=True)[:BUILDER_CAMPAIGNS])

    return {
        "builtin": [
            {"value": "email", "label": str(_("Email")), "type": "text"},
            {"value": "domain", "label": str(_("Email domain")), "type": "text"},
            {"value": "first_name", "label": str(_("First name")), "type": "text"},
            {"value": "last_name", "label": str(_("Last name")), "type": "text"},
        ],
        "custom": [
            {
                "value": segments.CUSTOM_PREFIX + f.key,
                "label": f.label,
                "type": f.type,
                "options": f.options,
            }
            for f in CustomField.objects.order_by("label", "id")
        ],
        "operators": {key: list(ops) for key, ops in segments.OPERATORS.items()},
        "listOps": list(segments.LIST_OPS),
        "subscribedOps": list(segments.SUBSCRIBED_OPS),
        "engagementOps": list(segments.ENGAGEMENT_OPS),
        "campaignOps": list(segments.CAMPAIGN_OPS),
        "severities": [
            {"value": "", "label": str(_("hard or soft"))},
            {"value": "hard", "label": str(_("hard"))},
            {"value": "soft", "label": str(_("soft only"))},
        ],
        "labels": segments.operator_labels(),
        "lists": [
            {"value": pk, "label": name}
            for pk, name in MailingList.objects.values_list("pk", "name")
        ],
        "campaigns": [
            {"value": pk, "label": name}
            for pk, name in Campaign.objects.filter(pk__in=latest | named)
            .order_by("-id")
            .values_list("pk", "name")
        ],
        "text": {
            "list": str(_("List membership")),
            "subscribed": str(_("Subscription date")),
            "opened": str(_("Opened")),
            "clicked": str(_("Clicked")),
            "sent": str(_("Was sent")),
            "bounced": str(_("Bounced")),
            "unsubscribed": str(_("Unsubscribed from")),
            "complained": str(_("Complained (marked as spam)")),
            "anyActivity": str(_("Any activity (opens, clicks, bounces …)")),
            "machineOnly": str(_("Opened or clicked by machines only")),
            "severity": str(_("bounce type")),
            "and": str(_("All of these (AND)")),
            "or": str(_("Any of these (OR)")),
            "addCondition": str(_("+ Condition")),
            "addGroup": str(_("+ Group")),
            "remove": str(_("Remove")),
            "anyList": str(_("any list")),
            "builtin": str(_("Contact")),
            "customFields": str(_("Custom fields")),
            "activity": str(_("Lists and activity")),
            "matching": str(_("contacts match")),
            "reachable": str(_("can be sent to")),
        },
    }


class SegmentListView(ListView):
    template_name = "contacts/segment_list.html"
    context_object_name = "segments"

    def get_queryset(self):
        return selectors.segment_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        fields = fields_service.custom_fields_by_key()
        for segment in context["segments"]:
            segment.counts = selectors.segment_count(segment.rules, fields)
        return context


class _SegmentFormView(FormView):
    template_name = "contacts/segment_form.html"
    form_class = SegmentForm
    segment = None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["segment"] = self.segment
        context["builder_config"] = segment_builder_config(
            self.segment.rules if self.segment else None
        )
        if self.segment is not None:
            # Shown before the builder's script asks for it, and without script at all.
            context["counts"] = selectors.segment_count(self.segment.rules)
        return context

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def form_valid(self, form):
        try:
            if self.segment is None:
                segment = services.segment_create(**form.cleaned_data)
            else:
                segment = services.segment_update(self.segment, **form.cleaned_data)
        except ValidationError as exc:
            add_errors(form, exc)
            return self.form_invalid(form)
        messages.success(
            self.request, _("The segment “%(name)s” was saved.") % {"name": segment.name}
        )
        return redirect("contacts:segment-edit", pk=segment.pk)


class SegmentCreateView(_SegmentFormView):
    pass


class SegmentUpdateView(_SegmentFormView):
    def dispatch(self, request, *args, **kwargs):
        self.segment = get_object_or_404(Segment, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        return {
            "name": self.segment.name,
            "description": self.segment.description,
            "rules": json.dumps(self.segment.rules, ensure_ascii=False),
        }


class SegmentDeleteView(View):
    def post(self, request, pk):
        segment = get_object_or_404(Segment, pk=pk)
        services.segment_delete(segment)
        messages.success(request, _("The segment “%(name)s” was deleted.") % {"name": segment.name})
        return redirect("contacts:segments")


class SegmentCountView(View):
    """POST {"rules": ...} → {"count": N, "reachable": M}, or 400 {"errors": [...]}.

    What the rule builder calls as the rule changes. A POST because a rule can be long.
    """

    def post(self, request):
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"errors": [_("The request is not valid JSON.")]}, status=400)
        rules = payload.get("rules") if isinstance(payload, dict) else None
        try:
            clean = segments.segment_rules_clean(rules)
        except ValidationError as exc:
            return JsonResponse({"errors": exc.message_dict.get("rules", exc.messages)}, status=400)
        return JsonResponse(selectors.segment_count(clean))


class CampaignAudienceView(View):
    """Segments and exclusions of a draft campaign; the campaign editor embeds this form."""

    def post(self, request, pk):
        from campaigns.models import Campaign

        campaign = get_object_or_404(Campaign, pk=pk)
        form = CampaignAudienceForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return redirect("campaigns:edit", pk=campaign.pk)
        try:
            services.campaign_audience_set(campaign, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, exc.messages[0])
            return redirect("campaigns:detail", pk=campaign.pk)
        messages.success(request, _("The campaign's segments and exclusions were saved."))
        return redirect("campaigns:edit", pk=campaign.pk)

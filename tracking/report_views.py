"""Marketer-facing reports (behind login, like every page outside the public endpoints)."""

from __future__ import annotations

import csv
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import FormView, ListView, TemplateView

from campaigns.models import Campaign
from tracking import selectors, services
from tracking.forms import RecipientsSegmentForm

# Recipient filters in the order the page shows them.
RECIPIENT_TABS = [
    ("", gettext_lazy("Any activity")),
    ("opened", gettext_lazy("Opened")),
    ("clicked", gettext_lazy("Clicked")),
    ("unsubscribed", gettext_lazy("Unsubscribed")),
    ("bounced", gettext_lazy("Bounced")),
    ("complained", gettext_lazy("Complained")),
    ("machine", gettext_lazy("Machine only")),
    ("not_opened", gettext_lazy("Not opened")),
]
# Recipients per domain are counted again at most this often while a campaign sends.
DOMAIN_RECOUNT = timedelta(minutes=5)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """Make a text cell inert in spreadsheets by prefixing formula triggers with a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


class ReportIndexView(ListView):
    template_name = "tracking/report_index.html"
    paginate_by = 25
    context_object_name = "campaigns"

    def get_queryset(self):
        return selectors.campaigns_overview()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaigns = list(context["campaigns"])
        services.message_stats_refresh(campaigns)
        context["campaigns"] = selectors.campaigns_overview_counts(campaigns)
        trends = selectors.dashboard_trends()
        trends["names"] = {
            "open_rate": _("Open rate"),
            "click_rate": _("Click rate"),
            "bounce_rate": _("Bounce rate"),
            "unsubscribe_rate": _("Unsubscribe rate"),
        }
        context["trends"] = trends
        return context


def _campaign(pk: int) -> Campaign:
    return get_object_or_404(Campaign, pk=pk)


class CampaignReportView(TemplateView):
    template_name = "tracking/report_campaign.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaign = _campaign(kwargs["pk"])
        if selectors.domain_stats_stale(campaign, now=timezone.now(), max_age=DOMAIN_RECOUNT):
            services.domain_stats_refresh(campaign)
        services.message_stats_refresh([campaign])
        stats = selectors.campaign_stats(campaign)
        funnel = selectors.campaign_funnel(stats)
        clients = selectors.campaign_clients(campaign)
        timeline = selectors.campaign_timeline(campaign)
        context.update(
            campaign=campaign,
            stats=stats,
            funnel=funnel,
            links=selectors.campaign_link_rows(campaign),
            domains=selectors.campaign_domains(campaign),
            clients=clients,
            bounces=selectors.bounce_events(campaign_id=campaign.pk),
            tabs=RECIPIENT_TABS,
            # Kept for templates that used the earlier names.
            open_rate=funnel["open_rate"],
            click_rate=funnel["click_rate"],
            click_to_open=funnel["click_to_open"],
            unsubscribe_rate=funnel["unsubscribe_rate"],
            complaint_rate=funnel["complaint_rate"],
            charts={
                "funnel": {
                    "labels": [
                        _("Recipients"),
                        _("Sent"),
                        _("Delivered"),
                        _("Opened"),
                        _("Clicked"),
                    ],
                    "values": [
                        stats["recipients"],
                        stats["sent"],
                        stats["delivered"],
                        stats["opens_unique"],
                        stats["clicks_unique"],
                    ],
                },
                "timeline": {
                    **timeline,
                    "labels": {
                        "opens": _("Opens"),
                        "clicks": _("Clicks"),
                        "opens_machine": _("Machine opens"),
                        "clicks_machine": _("Machine clicks"),
                        "x": _("Hours since sending"),
                    },
                },
                "clients": {
                    "labels": [row["client"] for row in clients["clients"]],
                    "values": [row["opened"] for row in clients["clients"]],
                },
            },
        )
        return context


def _message_id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


class CampaignRecipientsView(TemplateView):
    """The recipients who did one thing, newest first, in keyset pages (see
    selectors.campaign_recipients_page): fast on the last page of a million."""

    template_name = "tracking/report_recipients.html"
    page_size = 50

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaign = _campaign(self.kwargs["pk"])
        what = self.request.GET.get("what", "")
        if what not in selectors.RECIPIENT_LISTS:
            what = ""
        page = selectors.campaign_recipients_page(
            campaign,
            what,
            before=_message_id(self.request.GET.get("before")),
            after=_message_id(self.request.GET.get("after")),
            size=self.page_size,
        )
        bounces = selectors.message_bounces(a.message_id for a in page.rows if a.bounced_at)
        for activity in page.rows:
            activity.bounce = bounces.get(activity.message_id)
        context.update(
            campaign=campaign,
            what=what,
            tabs=RECIPIENT_TABS,
            rows=page.rows,
            page=page,
            total=selectors.campaign_recipients_count(campaign, what),
        )
        if what in selectors.RECIPIENT_SEGMENT_CONDITIONS:
            context["segment_form"] = RecipientsSegmentForm(
                initial=_segment_initial(campaign, what)
            )
        return context


def _segment_initial(campaign: Campaign, what: str) -> dict[str, str]:
    from contacts.selectors import segment_name_free

    label = dict(RECIPIENT_TABS).get(what, "")
    return {
        "what": what,
        "name": segment_name_free(
            _("%(list)s — %(campaign)s") % {"list": label, "campaign": campaign.name}
        ),
    }


class CampaignRecipientsSegmentView(FormView):
    """Save one of the report's recipients lists as a segment whose rules pick the same
    contacts (tracking.selectors.campaign_recipients_rules), then show that segment.

    GET shows the form on its own; the recipients page embeds it and posts here.
    """

    template_name = "tracking/report_recipients_segment.html"
    form_class = RecipientsSegmentForm

    def dispatch(self, request, *args, **kwargs):
        self.campaign = _campaign(kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self):
        what = self.request.GET.get("what", "")
        if what not in selectors.RECIPIENT_SEGMENT_CONDITIONS:
            what = ""
        return _segment_initial(self.campaign, what)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context["form"]
        what = form["what"].value() or ""
        context.update(
            campaign=self.campaign,
            what=what,
            list_label=dict(RECIPIENT_TABS).get(what, ""),
        )
        return context

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def form_valid(self, form):
        from contacts import services as contact_services

        what = form.cleaned_data["what"]
        rules = selectors.campaign_recipients_rules(self.campaign, what)
        if rules is None:
            form.add_error(None, _("This list of recipients cannot be saved as a segment."))
            return self.form_invalid(form)
        description = _("Recipients of “%(campaign)s”: %(list)s. Saved from its report.") % {
            "campaign": self.campaign.name,
            "list": dict(RECIPIENT_TABS)[what],
        }
        try:
            segment = contact_services.segment_create(
                name=form.cleaned_data["name"], rules=rules, description=description
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return self.form_invalid(form)
        messages.success(
            self.request,
            _("The segment “%(name)s” was saved. It stays up to date with the report.")
            % {"name": segment.name},
        )
        return redirect("contacts:segment-edit", pk=segment.pk)


# Rows read (and their bounces looked up) at a time while the export streams.
_CSV_CHUNK = 2000


class _Echo:
    def write(self, value: str) -> str:
        return value


def campaign_recipients_csv(request, pk: int):
    """The recipients list as CSV, streamed, opened safely by spreadsheets."""
    campaign = _campaign(pk)
    what = request.GET.get("what", "")
    if what not in selectors.RECIPIENT_LISTS:
        what = ""
    writer = csv.writer(_Echo())
    header = [
        "email",
        "opened_at",
        "opens",
        "clicked_at",
        "clicks",
        "unsubscribed_at",
        "bounced_at",
        "bounce",
        "bounce_status",
        "bounce_smtp_code",
        "bounce_diagnostic",
        "complained_at",
        "client",
        "device",
    ]

    def iso(value):
        return value.isoformat() if value else ""

    def row(a, bounce):
        return [
            csv_safe(a.message.email),
            iso(a.opened_at),
            a.opens,
            iso(a.clicked_at),
            a.clicks,
            iso(a.unsubscribed_at),
            iso(a.bounced_at),
            a.bounce_severity,
            # What the receiving side said is text from outside: made inert like the rest.
            csv_safe(bounce.status_code) if bounce else "",
            (bounce.smtp_code or "") if bounce else "",
            csv_safe(bounce.diagnostic) if bounce else "",
            iso(a.complained_at),
            csv_safe(a.client),
            csv_safe(a.device),
        ]

    def lines():
        yield "\ufeff" + writer.writerow(header)  # BOM: Excel reads UTF-8
        chunk: list = []
        for a in selectors.campaign_recipients_rows(campaign, what, chunk_size=_CSV_CHUNK):
            chunk.append(a)
            if len(chunk) == _CSV_CHUNK:
                yield from chunk_lines(chunk)
                chunk = []
        yield from chunk_lines(chunk)

    def chunk_lines(chunk):
        # The bounces of a chunk's bounced recipients in one query, not one per row.
        bounces = selectors.message_bounces(a.message_id for a in chunk if a.bounced_at)
        for a in chunk:
            yield writer.writerow(row(a, bounces.get(a.message_id)))

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    name = f"campaign-{campaign.pk}-{what or 'all'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response

"""Campaigns over REST: CRUD on drafts, starting a send, and the headline numbers."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from campaigns.api.serializers import (
    STATS_KEYS,
    CampaignErrorSerializer,
    CampaignSerializer,
    CampaignStatsSerializer,
)
from campaigns.models import Campaign
from campaigns.services import CampaignError, campaign_delete, campaign_start
from tracking.selectors import campaign_link_stats, campaign_stats
from tracking.services import message_stats_refresh

_BAD_REQUEST = OpenApiResponse(CampaignErrorSerializer, description="Refused; see detail.")


def _first_message(errors: Any) -> str:
    """The first message in DRF's error structure, prefixed with the field it belongs to."""
    if isinstance(errors, dict) and errors:
        field, value = next(iter(errors.items()))
        message = _first_message(value)
        return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return _first_message(errors[0])
    return str(errors)


@extend_schema_view(
    create=extend_schema(
        summary="Create a draft campaign",
        responses={201: CampaignSerializer, 400: _BAD_REQUEST},
    ),
    update=extend_schema(
        summary="Replace a draft campaign",
        responses={200: CampaignSerializer, 400: _BAD_REQUEST},
    ),
    partial_update=extend_schema(
        summary="Change a draft campaign",
        responses={200: CampaignSerializer, 400: _BAD_REQUEST},
    ),
    destroy=extend_schema(
        summary="Delete a draft campaign",
        responses={204: None, 400: _BAD_REQUEST},
    ),
)
class CampaignViewSet(viewsets.ModelViewSet):
    """Campaigns. Only drafts can be changed or deleted; the template is checked on save,
    and an error names the line it is on."""

    queryset = Campaign.objects.prefetch_related("lists").order_by("-id")
    serializer_class = CampaignSerializer

    def handle_exception(self, exc: Exception) -> Response:
        # Field errors get a top-level detail that names the field and the template line,
        # so a client can show one message without walking the structure.
        if (
            isinstance(exc, ValidationError)
            and isinstance(exc.detail, dict)
            and "detail" not in exc.detail
        ):
            exc = ValidationError({"detail": _first_message(exc.detail), "errors": exc.detail})
        return super().handle_exception(exc)

    def _refuse_unless_draft(self, campaign: Campaign, message: str) -> None:
        if campaign.status != Campaign.Status.DRAFT:
            raise ValidationError({"detail": message % {"status": campaign.status}})

    def perform_create(self, serializer: CampaignSerializer) -> None:
        serializer.save(created_by=self.request.user)

    def update(self, request, *args, **kwargs):
        self._refuse_unless_draft(
            self.get_object(), _("Only a draft campaign can be edited; this one is %(status)s.")
        )
        return super().update(request, *args, **kwargs)

    def perform_destroy(self, instance: Campaign) -> None:
        try:
            campaign_delete(instance.pk)
        except CampaignError as exc:
            raise ValidationError({"detail": str(exc)}) from None

    @extend_schema(
        summary="Start sending",
        description=(
            "Freeze the audience (active subscribers of the campaign's lists) and queue the "
            "messages. Only a draft can be sent."
        ),
        request=None,
        responses={
            202: OpenApiResponse(CampaignSerializer, description="Sending has started."),
            400: _BAD_REQUEST,
        },
    )
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        campaign = self.get_object()
        try:
            campaign = campaign_start(campaign.pk)
        except CampaignError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(campaign).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Headline numbers and clicks per link",
        description=(
            "Counts over the campaign's messages and tracking events. Unique opens, clicks "
            "and unsubscribes count distinct messages; totals count every event. While the "
            "campaign sends, recipients, sent and failed may be up to 30 seconds old."
        ),
        request=None,
        responses={200: CampaignStatsSerializer},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        campaign = self.get_object()
        message_stats_refresh([campaign])
        numbers = campaign_stats(campaign)
        data: dict[str, Any] = {key: numbers[key] for key in STATS_KEYS}
        data["links"] = campaign_link_stats(campaign)
        return Response(data)

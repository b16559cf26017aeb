"""Campaign API shapes. Validation mirrors the editor form; writes go through services."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework import serializers

from campaigns import rendering
from campaigns.models import Campaign
from campaigns.services import CampaignError, campaign_create, campaign_update
from contacts.models import MailingList, Segment
from contacts.services import campaign_audience_set
from mailcenter.delivery import sender_names

# The keys of GET /campaigns/{id}/stats/ besides "links": a public contract, so listed here
# rather than passing through whatever the report selector grows.
STATS_KEYS = (
    "recipients",
    "sent",
    "failed",
    "opens_unique",
    "opens_total",
    "clicks_unique",
    "clicks_total",
    "unsubscribes",
)


def _single_line(value: str, message: str) -> str:
    # These values become mail headers: a line break would let the text add headers.
    if "\r" in value or "\n" in value:
        raise serializers.ValidationError(message)
    return value.strip()


class CampaignSerializer(serializers.ModelSerializer):
    lists = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=MailingList.objects.all(),
        required=False,
        help_text="Ids of the mailing lists whose active subscribers receive the campaign.",
    )
    segments = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Segment.objects.all(),
        required=False,
        help_text="Ids of segments whose contacts also receive the campaign.",
    )
    excluded_lists = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=MailingList.objects.all(),
        required=False,
        help_text="Ids of lists whose subscribers are left out.",
    )
    excluded_segments = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Segment.objects.all(),
        required=False,
        help_text="Ids of segments whose contacts are left out.",
    )

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "subject",
            "from_name",
            "from_email",
            "reply_to",
            "html",
            "lists",
            "segments",
            "excluded_lists",
            "excluded_segments",
            "track_opens",
            "track_clicks",
            "sender",
            "status",
        ]
        read_only_fields = ["id", "status"]
        extra_kwargs = {
            "sender": {
                "required": False,
                "help_text": "Alias of the named sender that delivers it (Settings → Senders, "
                "or MAILCENTER_SENDERS); the default sender when left out.",
            },
            "subject": {"trim_whitespace": False},
            "from_name": {"trim_whitespace": False},
            "html": {"trim_whitespace": False},
        }

    def validate_subject(self, value: str) -> str:
        return _single_line(value, _("The subject must be a single line."))

    def validate_sender(self, value: str) -> str:
        if value not in sender_names():
            raise serializers.ValidationError(
                _("The sender “%(name)s” is not configured.") % {"name": value}
            )
        return value

    def validate_from_name(self, value: str) -> str:
        return _single_line(value, _("The from name must be a single line."))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A partial update checks the content it would leave behind, not just the new part.
        subject = attrs.get("subject", self.instance.subject if self.instance else "")
        html = attrs.get("html", self.instance.html if self.instance else "")
        lists = attrs.get("lists", None if self.instance is None else self.instance.lists.all())
        segments = attrs.get(
            "segments", None if self.instance is None else self.instance.segments.all()
        )
        if not lists and not segments:
            raise serializers.ValidationError(
                {"lists": [_("Choose at least one list or segment.")]}
            )
        try:
            rendering.validate_content(subject, html)
        except rendering.TemplateError as exc:
            try:
                rendering.validate_content(subject, "")
            except rendering.TemplateError:
                field = "subject"
            else:
                field = "html"
            raise serializers.ValidationError({field: [str(exc)]}) from None
        return attrs

    @staticmethod
    def _pop_audience(validated_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: validated_data.pop(key)
            for key in ("segments", "excluded_lists", "excluded_segments")
            if key in validated_data
        }

    @staticmethod
    def _set_audience(campaign: Campaign, audience: dict[str, Any]) -> None:
        if not audience:
            return
        try:
            campaign_audience_set(campaign, **audience)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"detail": exc.messages[0]}) from None

    def create(self, validated_data: dict[str, Any]) -> Campaign:
        audience = self._pop_audience(validated_data)
        validated_data.setdefault("lists", [])
        try:
            with transaction.atomic():
                campaign = campaign_create(**validated_data)
                self._set_audience(campaign, audience)
                return campaign
        except CampaignError as exc:
            raise serializers.ValidationError({"detail": str(exc)}) from None

    def update(self, instance: Campaign, validated_data: dict[str, Any]) -> Campaign:
        lists = validated_data.pop("lists", None)
        audience = self._pop_audience(validated_data)
        try:
            with transaction.atomic():
                campaign = campaign_update(instance.pk, lists=lists, **validated_data)
                self._set_audience(campaign, audience)
                return campaign
        except CampaignError as exc:
            raise serializers.ValidationError({"detail": str(exc)}) from None


class CampaignLinkStatsSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    url = serializers.URLField()
    clicks_total = serializers.IntegerField()
    clicks_unique = serializers.IntegerField(help_text="Distinct messages with a click.")


class CampaignStatsSerializer(serializers.Serializer):
    recipients = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()
    opens_unique = serializers.IntegerField(help_text="Distinct messages opened.")
    opens_total = serializers.IntegerField()
    clicks_unique = serializers.IntegerField(help_text="Distinct messages with a click.")
    clicks_total = serializers.IntegerField()
    unsubscribes = serializers.IntegerField()
    links = CampaignLinkStatsSerializer(many=True)


class CampaignErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A message fit to show the user.")
    errors = serializers.DictField(
        required=False, help_text="Per-field messages, when the input was invalid."
    )

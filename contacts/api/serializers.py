"""Shapes of lists, contacts and imports in the REST API; the writes are in services."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from contacts import selectors, services
from contacts.models import (
    Contact,
    ContactImport,
    CustomField,
    MailingList,
    Segment,
    Suppression,
)


def drf_validation_error(exc: DjangoValidationError) -> serializers.ValidationError:
    """Carry a service's ValidationError into DRF, field messages kept on their fields."""
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(exc.message_dict)
    return serializers.ValidationError(exc.messages)


class MailingListSerializer(serializers.ModelSerializer):
    class Meta:
        model = MailingList
        fields = ["id", "name", "description"]
        # Uniqueness ignores case, so the service checks it, not the model's validator.
        extra_kwargs = {"name": {"validators": []}}


class ListIdsField(serializers.ListField):
    """The ids of the lists a contact is subscribed to; lists they left are not shown."""

    child = serializers.IntegerField(min_value=1)

    def get_attribute(self, instance: Contact) -> list[int]:
        return selectors.contact_subscribed_list_ids(instance)

    def to_internal_value(self, data: Any) -> list[MailingList]:
        ids = super().to_internal_value(data)
        found = MailingList.objects.in_bulk(ids)
        missing = sorted(set(ids) - found.keys())
        if missing:
            raise serializers.ValidationError(
                [_("There is no list with id %(id)s.") % {"id": pk} for pk in missing]
            )
        return [found[pk] for pk in dict.fromkeys(ids)]


class ContactSerializer(serializers.ModelSerializer):
    # A plain string: the service normalises and validates it, and checks uniqueness.
    email = serializers.CharField(max_length=254)
    attributes = serializers.JSONField(
        required=False, help_text=gettext_lazy("An object of custom field names and values.")
    )
    lists = ListIdsField(
        required=False, help_text=gettext_lazy("Ids of the lists the contact is in.")
    )

    class Meta:
        model = Contact
        fields = ["id", "email", "first_name", "last_name", "attributes", "status", "lists"]

    def validate_email(self, value: str) -> str:
        try:
            return services.normalize_email(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def validate_attributes(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                _("Attributes must be a JSON object of names and values.")
            )
        return value


class ContactImportSerializer(serializers.ModelSerializer):
    list = serializers.PrimaryKeyRelatedField(source="mailing_list", read_only=True)

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "list",
            "original_name",
            "status",
            "rows_total",
            "rows_done",
            "created",
            "updated",
            "skipped",
            "refused",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class ContactImportDetailSerializer(ContactImportSerializer):
    refused_rows = serializers.JSONField(
        read_only=True,
        help_text=gettext_lazy(
            'Up to 1000 refused rows: [{"row": 3, "email": "...", "reason": "..."}].'
        ),
    )
    skipped_rows = serializers.JSONField(
        read_only=True,
        help_text=gettext_lazy(
            "Up to 1000 skipped rows with a reason (left before, unknown in update mode); "
            'with left_policy "update", people who left and whose details changed are listed '
            'too, with "updated": true (counted as updated, not subscribed).'
        ),
    )

    class Meta(ContactImportSerializer.Meta):
        fields = [
            *ContactImportSerializer.Meta.fields,
            "mode",
            "left_policy",
            "mapping",
            "refused_rows",
            "skipped_rows",
        ]
        read_only_fields = fields


MAPPING_HELP = gettext_lazy(
    "Optional JSON: a list with one target per column, or an object naming some columns "
    '(by header or position from 1) whose others keep their guess, like {"E-mail": '
    '"email", "Town": "new:city:text"}. A target is "email", "first_name", "last_name", '
    '"ignore", "field:KEY" (an existing custom field; the bare KEY also works in the object '
    'form), or a new field: "new" (a text field named after the column), "new:KEY" or '
    '"new:KEY:TYPE" with TYPE text, number, date or boolean. Without it the columns are '
    "guessed from their names."
)
_MAPPING_SHAPE = gettext_lazy(
    'The mapping must be a JSON list, like ["email", "first_name", "ignore"], or an object, '
    'like {"E-mail": "email"}.'
)


LEFT_POLICY_HELP = gettext_lazy(
    "What to do with contacts who unsubscribed, bounced or complained before. skip (the "
    "default): leave them as they are. update: update their names and fields like other "
    "contacts' under the mode, and nothing else. Either way they stay unsubscribed: no "
    "status or subscription is changed and they do not join the list."
)


class ContactImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=gettext_lazy("A CSV file with a header row naming an email column.")
    )
    list = serializers.PrimaryKeyRelatedField(
        queryset=MailingList.objects.all(), help_text=gettext_lazy("Id of the list to import into.")
    )

    mode = serializers.ChoiceField(
        choices=ContactImport.Mode.choices,
        default=ContactImport.Mode.ADD_UPDATE,
        help_text=gettext_lazy(
            "add: new contacts only, known ones keep their data; add_update: both; update: "
            "known contacts only. People who left before are never subscribed again."
        ),
    )
    left_policy = serializers.ChoiceField(
        choices=ContactImport.LeftPolicy.choices,
        default=ContactImport.LeftPolicy.SKIP,
        help_text=LEFT_POLICY_HELP,
    )
    mapping = serializers.CharField(
        required=False,
        help_text=MAPPING_HELP,
    )
    review = serializers.BooleanField(
        default=False,
        help_text=gettext_lazy(
            "true: store the file and wait with status mapping; read the columns at "
            "imports/{id}/columns/ and start it with POST imports/{id}/mapping/."
        ),
    )

    def validate_file(self, value: Any) -> Any:
        try:
            services.contact_import_validate_file(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value

    def validate_mapping(self, value: str) -> Any:
        return _mapping_parse(value)


def _mapping_parse(value: Any) -> list[Any] | dict[str, Any]:
    """A mapping given as JSON text (multipart forms) or as JSON itself."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise serializers.ValidationError(_MAPPING_SHAPE) from None
    if not isinstance(value, list | dict):
        raise serializers.ValidationError(_MAPPING_SHAPE)
    return value


class ContactImportConfirmSerializer(serializers.Serializer):
    mapping = serializers.JSONField(
        required=False,
        help_text=gettext_lazy(
            "As when creating, as JSON (not text); without it the guesses are used."
        ),
    )
    mode = serializers.ChoiceField(
        choices=ContactImport.Mode.choices,
        required=False,
        help_text=gettext_lazy("As when creating; the mode given then is kept without it."),
    )
    left_policy = serializers.ChoiceField(
        choices=ContactImport.LeftPolicy.choices,
        required=False,
        help_text=gettext_lazy("As when creating; the policy given then is kept without it."),
    )

    def validate_mapping(self, value: Any) -> Any:
        return _mapping_parse(value)


class ContactImportColumnSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=gettext_lazy("Position, from 0."))
    header = serializers.CharField()
    samples = serializers.ListField(
        child=serializers.CharField(), help_text=gettext_lazy("Up to five non-empty values.")
    )
    guess = serializers.CharField(help_text=gettext_lazy("The target guessed from the header."))
    new_field_key = serializers.CharField(
        help_text=gettext_lazy("The key a new field made from this column gets by default.")
    )


class ContactImportProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ContactImport.Status.choices)
    status_display = serializers.CharField()
    running = serializers.BooleanField(help_text=gettext_lazy("Keep polling while true."))
    percent = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    rows_total = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    skipped = serializers.IntegerField()
    refused = serializers.IntegerField()
    rate = serializers.IntegerField(
        required=False, help_text=gettext_lazy("Rows per second (while running).")
    )
    rate_display = serializers.CharField(required=False)
    seconds_left = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text=gettext_lazy("Estimated seconds left (while running); null until known."),
    )
    time_left = serializers.CharField(required=False)


class CustomFieldSerializer(serializers.ModelSerializer):
    options = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text=gettext_lazy("The allowed values of a choice field."),
    )

    class Meta:
        model = CustomField
        fields = ["id", "key", "label", "type", "options"]
        # The service checks the key's shape and uniqueness, with clearer messages.
        extra_kwargs = {"key": {"validators": []}}


class SegmentSerializer(serializers.ModelSerializer):
    rules = serializers.JSONField(
        required=False,
        help_text=gettext_lazy(
            'A group: {"op": "and"|"or", "rules": [condition or group, ...]}; a condition is '
            '{"field": ..., "op": ..., "value": ...}. Fields: email, domain, first_name, '
            "last_name, custom.<key>, list, subscribed, opened, clicked, sent, bounced "
            '(optional "severity": "hard"|"soft"), unsubscribed, complained, activity, '
            "machine_only. opened and clicked count people's opens and clicks, not machines'."
        ),
    )
    count = serializers.SerializerMethodField(
        help_text=gettext_lazy("Contacts matching the rules now.")
    )
    reachable = serializers.SerializerMethodField(
        help_text=gettext_lazy("Of those, how many a campaign can be sent to.")
    )

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rules", "count", "reachable", "updated_at"]
        read_only_fields = ["id", "count", "reachable", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}

    def _counts(self, segment: Segment) -> dict[str, int]:
        cache = self.context.setdefault("_counts", {})
        if segment.pk not in cache:
            cache[segment.pk] = selectors.segment_count(segment.rules)
        return cache[segment.pk]

    def get_count(self, segment: Segment) -> int:
        return self._counts(segment)["count"]

    def get_reachable(self, segment: Segment) -> int:
        return self._counts(segment)["reachable"]


class SegmentCountSerializer(serializers.Serializer):
    rules = serializers.JSONField(help_text=gettext_lazy("Rules to count, as for a segment."))


class SegmentCountResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    reachable = serializers.IntegerField()


class SuppressionSerializer(serializers.ModelSerializer):
    value = serializers.CharField(
        max_length=254,
        help_text=gettext_lazy("An address (ann@example.com) or a domain (example.com)."),
    )

    class Meta:
        model = Suppression
        fields = ["id", "kind", "value", "reason", "created_at"]
        read_only_fields = ["id", "kind", "created_at"]

"""Shapes of lists, contacts and imports in the REST API; the writes are in services."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from contacts import selectors, services
from contacts.models import Contact, ContactImport, MailingList


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

    class Meta(ContactImportSerializer.Meta):
        fields = [*ContactImportSerializer.Meta.fields, "refused_rows"]
        read_only_fields = fields


class ContactImportCreateSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=gettext_lazy("A CSV file with a header row naming an email column.")
    )
    list = serializers.PrimaryKeyRelatedField(
        queryset=MailingList.objects.all(), help_text=gettext_lazy("Id of the list to import into.")
    )

    def validate_file(self, value: Any) -> Any:
        try:
            services.contact_import_validate_file(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value

"""Admin for lists, contacts, subscriptions and imports.

Contacts also import and export through django-import-export, for operators who want a
spreadsheet round trip; the CSV importer in the app is the path for marketers.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.admin import ImportExportModelAdmin

from contacts import selectors, services
from contacts.models import Contact, ContactImport, MailingList, Subscription


@admin.register(MailingList)
class MailingListAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name", "description"]


class ContactResource(resources.ModelResource):
    """Contacts by address: a row updates the contact with that address, whatever its case."""

    attributes = fields.Field(
        attribute="attributes", column_name="attributes", widget=widgets.JSONWidget()
    )

    class Meta:
        model = Contact
        fields = ["id", "email", "first_name", "last_name", "status", "attributes"]
        import_id_fields = ["email"]
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        try:
            row["email"] = services.normalize_email(row.get("email") or "")
        except ValidationError as exc:
            raise ValueError(exc.messages[0]) from None

    def get_instance(self, instance_loader: Any, row: Any) -> Contact | None:
        return selectors.contact_get_by_email(row.get("email") or "")


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    fields = ["mailing_list", "status", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["mailing_list"]


class ContactAdminForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = ["email", "first_name", "last_name", "attributes", "status"]

    def clean_email(self) -> str:
        email = services.normalize_email(self.cleaned_data["email"])
        if selectors.contact_email_taken(email, exclude_pk=self.instance.pk):
            raise ValidationError(_("A contact with this address already exists."))
        return email


@admin.register(Contact)
class ContactAdmin(ImportExportModelAdmin):
    resource_classes = [ContactResource]
    form = ContactAdminForm
    list_display = ["email", "first_name", "last_name", "status", "created_at"]
    list_filter = ["status", "subscriptions__mailing_list"]
    search_fields = ["email", "first_name", "last_name"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [SubscriptionInline]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["contact", "mailing_list", "status", "created_at"]
    list_filter = ["status", "mailing_list"]
    search_fields = ["contact__email"]
    list_select_related = ["contact", "mailing_list"]
    raw_id_fields = ["contact"]


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    """Read-only: an import started here would never be queued, so start them in the app."""

    list_display = [
        "id",
        "mailing_list",
        "original_name",
        "status",
        "created",
        "updated",
        "skipped",
        "refused",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["original_name", "mailing_list__name"]
    list_select_related = ["mailing_list"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

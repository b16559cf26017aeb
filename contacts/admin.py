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
from contacts.services.fields import contact_attributes_clean


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

    def before_save_instance(self, instance: Contact, row: Any, **kwargs: Any) -> None:
        """Hold a spreadsheet to the rules the services keep, as a row error each.

        A file must not bring back someone who left (an unsubscribed, bounced or
        complained contact made active again), create a contact the suppression list
        blocks, or store custom-field values of the wrong type.
        """
        if instance.status not in Contact.Status.values:
            raise ValueError(
                _("Unknown status “%(status)s”; use one of: %(values)s.")
                % {"status": instance.status, "values": ", ".join(Contact.Status.values)}
            )
        if instance.pk is not None:
            before = Contact.objects.filter(pk=instance.pk).values_list("status", flat=True)
            if before.first() in services.SUPPRESSED_STATUSES and (
                instance.status == Contact.Status.ACTIVE
            ):
                raise ValueError(
                    _(
                        "%(email)s unsubscribed, bounced or complained before and cannot be "
                        "made active again by an import."
                    )
                    % {"email": instance.email}
                )
        elif selectors.suppression_matches([instance.email]):
            raise ValueError(_("%(email)s is on the suppression list.") % {"email": instance.email})
        attributes = instance.attributes if isinstance(instance.attributes, dict) else {}
        try:
            instance.attributes = contact_attributes_clean(attributes)
        except ValidationError as exc:
            raise ValueError(" ".join(exc.messages)) from None


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

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        if (
            self.instance.pk is not None
            and self.instance.status in services.SUPPRESSED_STATUSES
            and status == Contact.Status.ACTIVE
        ):
            raise ValidationError(
                _(
                    "This person unsubscribed, bounced or complained; they can only subscribe "
                    "again themselves (a signup form or the preference centre)."
                )
            )
        return status


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

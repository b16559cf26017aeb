from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower, Now
from django.utils.translation import gettext_lazy as _


class MailingList(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    # Declared here rather than on Campaign so that the contacts app owns the table.
    excluded_from_campaigns = models.ManyToManyField(
        "campaigns.Campaign",
        related_name="excluded_lists",
        blank=True,
        verbose_name=_("excluded from campaigns"),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("list")
        verbose_name_plural = _("lists")

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")
        # Signed up through a double opt-in form and not confirmed yet: receives nothing.
        UNCONFIRMED = "unconfirmed", _("Unconfirmed")

    # Stored with the domain lower-cased; unique regardless of the local part's case.
    email = models.EmailField(_("email"), max_length=254)
    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.ACTIVE
    )
    lists = models.ManyToManyField(
        MailingList, through="Subscription", related_name="contacts", blank=True
    )
    # The database defaults are for the bulk importer: its COPY leaves the columns out
    # rather than send and parse two timestamps a row (a million rows: ~2 s of the
    # server's time). The ORM still sets its own values.
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="contact_email_ci_unique"),
        ]
        indexes = [models.Index(fields=["status"])]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return self.email


class Subscription(models.Model):
    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed", _("Subscribed")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        # Asked for through a double opt-in form; becomes subscribed when confirmed.
        UNCONFIRMED = "unconfirmed", _("Awaiting confirmation")

    # No single-column indexes on the keys: the unique (contact, list) constraint serves
    # lookups by contact and the (list, status) index those by list. Each index is written
    # for every subscription an import creates.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBSCRIBED)
    created_at = models.DateTimeField(auto_now_add=True, db_default=Now())
    updated_at = models.DateTimeField(auto_now=True, db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact", "mailing_list"], name="subscription_unique"),
        ]
        indexes = [models.Index(fields=["mailing_list", "status"])]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.mailing_list_id}"


class ContactImport(models.Model):
    """One CSV upload; the importer records its progress and outcome here."""

    class Status(models.TextChoices):
        MAPPING = "mapping", _("Choosing columns")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Mode(models.TextChoices):
        ADD_ONLY = "add", _("Add new contacts only")
        ADD_UPDATE = "add_update", _("Add new contacts and update existing ones")
        UPDATE_ONLY = "update", _("Update existing contacts only")

    class LeftPolicy(models.TextChoices):
        """What a file does to contacts who unsubscribed, bounced or complained before.

        Neither choice subscribes them again: only they can do that, through a signup
        form or the preference centre.
        """

        SKIP = "skip", _("Skip them")
        UPDATE = "update", _("Update their details, keep them unsubscribed")

    mailing_list = models.ForeignKey(
        MailingList, on_delete=models.CASCADE, related_name="imports", verbose_name=_("list")
    )
    mode = models.CharField(_("mode"), max_length=20, choices=Mode.choices, default=Mode.ADD_UPDATE)
    left_policy = models.CharField(
        _("contacts who unsubscribed before"),
        max_length=10,
        choices=LeftPolicy.choices,
        default=LeftPolicy.SKIP,
    )
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    # [{"row": 3, "email": "...", "reason": "..."}], capped so a bad file cannot bloat the row.
    refused_rows = models.JSONField(default=list, blank=True)
    # Skipped rows that have a reason worth telling (left before, unknown in update-only
    # mode), same shape and cap as refused_rows; repeats in the file are only counted.
    # Under LeftPolicy.UPDATE a left contact whose details changed is listed here too,
    # with "updated": true, since it was counted as updated but not subscribed.
    skipped_rows = models.JSONField(default=list, blank=True)
    # One target per CSV column ("email", "first_name", "last_name", "field:KEY", "ignore"),
    # chosen on the mapping page or sent through the API; null means "guess from headers".
    mapping = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Set by the Cancel button while running; the importer checks it between batches.
    cancel_requested = models.BooleanField(default=False)
    # Times a worker started it: more than one when a worker died running it.
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When the importer claimed the file: the rate and time left are measured from here.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Import {self.pk} into {self.mailing_list}"


class CustomField(models.Model):
    """A typed contact field; values live in ``Contact.attributes[key]``.

    Values are stored as JSON of their type (a number as a number, a boolean as a boolean,
    a date as an ISO ``YYYY-MM-DD`` string, which sorts as a date), so segments can compare
    them as what they are.
    """

    class Type(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        BOOLEAN = "boolean", _("Yes / no")
        CHOICE = "choice", _("Choice")

    key = models.CharField(
        _("key"),
        max_length=50,
        unique=True,
        help_text=_("Lower-case letters, digits and underscores; used as contact.attributes.KEY."),
    )
    label = models.CharField(_("label"), max_length=100)
    type = models.CharField(_("type"), max_length=10, choices=Type.choices, default=Type.TEXT)
    options = models.JSONField(
        _("options"), default=list, blank=True, help_text=_("The allowed values of a choice.")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label", "id"]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")

    def __str__(self) -> str:
        return self.label


class Segment(models.Model):
    """Contacts matching a rule, kept as JSON and compiled to one query when used.

    ``rules`` is a group: ``{"op": "and"|"or", "rules": [condition or group, ...]}``;
    ``contacts.segments`` describes the conditions, validates and compiles them.
    """

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    # Both relations are declared here so the contacts app owns their tables.
    campaigns = models.ManyToManyField(
        "campaigns.Campaign", related_name="segments", blank=True, verbose_name=_("campaigns")
    )
    excluded_from_campaigns = models.ManyToManyField(
        "campaigns.Campaign",
        related_name="excluded_segments",
        blank=True,
        verbose_name=_("excluded from campaigns"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        return self.name


class Suppression(models.Model):
    """An address or a whole domain that no campaign may be sent to.

    Contacts whose status is unsubscribed, bounced or complained are suppressed too, by
    that status; ``contacts.selectors.contact_sendable_q`` checks both.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", _("Address")
        DOMAIN = "domain", _("Domain")
        # An erased person's address, kept only as a SHA-256 of it lower-cased.
        HASH = "hash", _("Erased address")

    class Reason(models.TextChoices):
        MANUAL = "manual", _("Added by hand")
        IMPORT = "import", _("Imported")
        UNSUBSCRIBE = "unsubscribe", _("Unsubscribed")
        HARD_BOUNCE = "hard_bounce", _("Hard bounce")
        COMPLAINT = "complaint", _("Complaint")
        ERASED = "erased", _("Erased on request")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    # The address lower-cased whole (suppression ignores case), or the domain.
    value = models.CharField(_("address or domain"), max_length=254)
    reason = models.CharField(
        _("reason"), max_length=20, choices=Reason.choices, default=Reason.MANUAL
    )
    created_at = models.DateTimeField(_("added"), auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="suppression_unique"),
        ]
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppression list")

    def __str__(self) -> str:
        return self.value


def _form_key() -> str:
    import secrets

    return secrets.token_urlsafe(12)


class SignupForm(models.Model):
    """A public subscription form: which lists it subscribes to, which fields it asks for."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    # The public address of the form; random so forms cannot be enumerated.
    key = models.CharField(max_length=32, unique=True, default=_form_key, editable=False)
    lists = models.ManyToManyField(
        MailingList, related_name="signup_forms", verbose_name=_("lists")
    )
    # "first_name", "last_name" and custom field keys, in the order shown.
    fields = models.JSONField(_("fields"), default=list, blank=True)
    title = models.CharField(_("title"), max_length=200, blank=True)
    intro = models.TextField(_("introduction"), blank=True)
    button_label = models.CharField(_("button label"), max_length=100, blank=True)
    success_message = models.TextField(_("message after signing up"), blank=True)
    consent_text = models.TextField(
        _("consent text"),
        blank=True,
        help_text=_("When set, a box with this text must be ticked; the text is recorded."),
    )
    double_opt_in = models.BooleanField(_("double opt-in"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("subscription form")
        verbose_name_plural = _("subscription forms")

    def __str__(self) -> str:
        return self.name


class Consent(models.Model):
    """Proof of a sign-up: when, through which form, from which address, agreeing to what."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consents")
    signup_form = models.ForeignKey(
        SignupForm, null=True, blank=True, on_delete=models.SET_NULL, related_name="consents"
    )
    # Kept as they were at the time, so the record survives edits and deletion of the form.
    form_name = models.CharField(max_length=200)
    list_ids = models.JSONField(default=list)
    text = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.contact_id} via {self.form_name}"

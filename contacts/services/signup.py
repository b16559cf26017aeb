"""Subscription forms: defining them, taking sign-ups, double opt-in and consent.

A sign-up never lets a stranger change or re-subscribe someone else: an existing contact
only has empty values filled in; an address that bounced, complained or is blocklisted is
silently ignored; someone who unsubscribed comes back only by confirming from their own
mailbox. The public answer is the same whatever happened, so the form does not reveal who
is on the lists.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts import conf, selectors
from contacts.models import (
    Consent,
    Contact,
    CustomField,
    MailingList,
    SignupForm,
    Subscription,
    Suppression,
)
from contacts.services.contacts import NAME_MAX_LENGTH, normalize_email
from contacts.services.fields import custom_value_clean
from mailcenter.ratelimit import hit as rate_hit
from tracking.webhooks import services as webhooks

log = logging.getLogger(__name__)

NAME_FIELDS = ("first_name", "last_name")
CONFIRM_SALT = "mailcenter.contacts.confirm"
HONEYPOT_FIELD = "website"


class RateLimited(Exception):
    """Too many sign-ups from this IP address or for this email address; try later."""


# --- Definitions -------------------------------------------------------------------------


def _form_clean(
    *, name: str, lists: Iterable[MailingList], fields: Iterable[str], exclude_pk: int | None
) -> tuple[str, list[MailingList], list[str]]:
    errors: dict[str, Any] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = _("Give the form a name.")
    else:
        taken = SignupForm.objects.filter(name__iexact=name)
        if exclude_pk is not None:
            taken = taken.exclude(pk=exclude_pk)
        if taken.exists():
            errors["name"] = _("A form named “%(name)s” already exists.") % {"name": name}
    lists = list(lists)
    if not lists:
        errors["lists"] = _("Choose at least one list the form subscribes to.")
    known = set(NAME_FIELDS) | set(CustomField.objects.values_list("key", flat=True))
    fields = list(dict.fromkeys(fields))
    unknown = [f for f in fields if f not in known]
    if unknown:
        errors["fields"] = _("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)}
    if errors:
        raise ValidationError(errors)
    return name, lists, fields


def signup_form_save(
    signup_form: SignupForm | None,
    *,
    name: str,
    lists: Iterable[MailingList],
    fields: Iterable[str] = (),
    **texts: Any,
) -> SignupForm:
    """Create (``signup_form=None``) or change a form. Raises ValidationError.

    ``texts`` are the optional model fields: title, intro, button_label, success_message,
    consent_text, double_opt_in.
    """
    name, lists, fields = _form_clean(
        name=name,
        lists=lists,
        fields=fields,
        exclude_pk=signup_form.pk if signup_form else None,
    )
    signup_form = signup_form or SignupForm()
    signup_form.name = name
    signup_form.fields = fields
    for key, value in texts.items():
        setattr(signup_form, key, value)
    try:
        with transaction.atomic():
            signup_form.save()
            signup_form.lists.set(lists)
    except IntegrityError:
        raise ValidationError({"name": _("A form with this name already exists.")}) from None
    return signup_form


def signup_form_delete(signup_form: SignupForm) -> None:
    """Delete a form; the consents it collected stay, naming it."""
    signup_form.delete()


# --- Sign-up -----------------------------------------------------------------------------


@dataclass
class SignupData:
    email: str
    names: dict[str, str]
    attributes: dict[str, Any]


def signup_clean(signup_form: SignupForm, data: Mapping[str, Any]) -> SignupData:
    """Check what was typed into the form; raise ValidationError keyed by field name."""
    errors: dict[str, list[str]] = {}
    try:
        email = normalize_email(str(data.get("email", "")))
    except ValidationError as exc:
        errors["email"] = exc.messages
        email = ""
    fields = {f.key: f for f in CustomField.objects.filter(key__in=signup_form.fields)}
    names: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    for key in signup_form.fields:
        raw = data.get(key, "")
        if key in NAME_FIELDS:
            names[key] = str(raw).strip()[:NAME_MAX_LENGTH]
            continue
        field = fields.get(key)
        if field is None:
            continue
        try:
            value = custom_value_clean(field, raw)
        except ValidationError as exc:
            errors[key] = exc.messages
            continue
        if value is not None:
            attributes[key] = value
    if signup_form.consent_text and not data.get("consent"):
        errors["consent"] = [_("Please tick the box to agree.")]
    if errors:
        raise ValidationError(errors)
    return SignupData(email=email, names=names, attributes=attributes)


def _may_come_back(signup_form: SignupForm, key: str) -> bool:
    return (
        signup_form.double_opt_in
        and Suppression.objects.filter(
            kind=Suppression.Kind.EMAIL, value=key, reason=Suppression.Reason.UNSUBSCRIBE
        ).exists()
    )


def signup_submit(
    signup_form: SignupForm,
    data: Mapping[str, Any],
    *,
    ip: str | None = None,
    user_agent: str = "",
) -> Consent | None:
    """Take one sign-up. Returns the consent recorded, or None when nothing was done
    (a bot filled the honeypot, or the address must not be added).

    Raises RateLimited (per IP, then per address) and ValidationError for bad input.
    The confirmation mail of a double opt-in form is sent after the commit, at most once
    an hour per address.
    """
    if data.get(HONEYPOT_FIELD):
        return None
    if ip and rate_hit(f"signup:ip:{ip}", conf.signup_limit_per_ip(), 3600):
        raise RateLimited
    clean = signup_clean(signup_form, data)
    key = clean.email.lower()
    if rate_hit(f"signup:email:{key}", conf.signup_limit_per_address(), 3600):
        raise RateLimited
    # Blocklisted, bounced into the list, or erased: a form does not bring them back. An
    # unsubscribed person can, by confirming from their mailbox (see signup_confirm).
    if selectors.suppression_matches([key]) and not _may_come_back(signup_form, key):
        return None
    list_ids = list(signup_form.lists.values_list("id", flat=True))
    with transaction.atomic():
        contact = selectors.contact_get_by_email(clean.email)
        if contact is None:
            contact = Contact(
                email=clean.email,
                status=Contact.Status.UNCONFIRMED
                if signup_form.double_opt_in
                else Contact.Status.ACTIVE,
                attributes={},
            )
            created = True
        else:
            created = False
            if contact.status in (Contact.Status.BOUNCED, Contact.Status.COMPLAINED):
                return None
            if contact.status == Contact.Status.UNSUBSCRIBED and not signup_form.double_opt_in:
                return None
        # Only fill what is empty: a stranger typing someone's address changes nothing.
        for name, value in clean.names.items():
            if value and not getattr(contact, name):
                setattr(contact, name, value)
        current = contact.attributes if isinstance(contact.attributes, dict) else {}
        contact.attributes = {**clean.attributes, **current}
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:
            if created:  # the same address signed up in parallel
                return None
            raise
        status = (
            Subscription.Status.UNCONFIRMED
            if signup_form.double_opt_in
            else Subscription.Status.SUBSCRIBED
        )
        existing = dict(
            Subscription.objects.filter(contact=contact, mailing_list_id__in=list_ids).values_list(
                "mailing_list_id", "status"
            )
        )
        Subscription.objects.bulk_create(
            [
                Subscription(contact=contact, mailing_list_id=pk, status=status)
                for pk in list_ids
                if pk not in existing
            ],
            ignore_conflicts=True,
        )
        if signup_form.double_opt_in:
            # Lists they left wait for the confirmation too; lists they are on stay as they are.
            Subscription.objects.filter(
                contact=contact,
                mailing_list_id__in=list_ids,
                status=Subscription.Status.UNSUBSCRIBED,
            ).update(status=Subscription.Status.UNCONFIRMED)
        consent = Consent.objects.create(
            contact=contact,
            signup_form=signup_form,
            form_name=signup_form.name,
            list_ids=list_ids,
            text=signup_form.consent_text,
            ip=ip or None,
            user_agent=user_agent[:500],
            confirmed_at=None if signup_form.double_opt_in else timezone.now(),
        )
        if not signup_form.double_opt_in:
            webhooks.subscribed_enqueue(contact.pk, contact.email, list_ids, consent.confirmed_at)
        if signup_form.double_opt_in and cache.add(f"signup:mail:{key}", 1, timeout=3600):
            consent_id = consent.pk
            transaction.on_commit(lambda: signup_send_confirmation(consent_id))
    return consent


def confirmation_token(consent: Consent) -> str:
    return signing.TimestampSigner(salt=CONFIRM_SALT).sign(str(consent.pk))


def confirmation_url(consent: Consent) -> str:
    path = reverse("contacts:signup-confirm", args=[confirmation_token(consent)])
    return f"{settings.BASE_URL}{path}"


def signup_send_confirmation(consent_id: int) -> bool:
    """Mail the confirmation link through the default sender. Returns whether it was
    accepted; a failure is logged, the person can sign up again an hour later."""
    consent = Consent.objects.select_related("contact", "signup_form").filter(pk=consent_id).first()
    if consent is None:
        return False
    lists = MailingList.objects.filter(pk__in=consent.list_ids).order_by("name")
    context = {
        "consent": consent,
        "lists": lists,
        "url": confirmation_url(consent),
        "form_name": consent.form_name,
    }
    subject = _("Please confirm your subscription")
    text = render_to_string("contacts/email/confirm.txt", context)
    html = render_to_string("contacts/email/confirm.html", context)
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [consent.contact.email]
    )
    message.attach_alternative(html, "text/html")
    try:
        return bool(message.send())
    except Exception:
        log.exception("Could not send the confirmation mail of consent %s", consent_id)
        return False


def signup_confirm(token: str) -> Consent | None:
    """Confirm the sign-up a link names: the contact becomes active and the lists of that
    sign-up subscribed. None for a link that is forged or older than the limit.
    Idempotent: a second click changes nothing."""
    try:
        value = signing.TimestampSigner(salt=CONFIRM_SALT).unsign(
            token, max_age=conf.signup_confirm_max_age()
        )
        consent_id = int(value)
    except (signing.BadSignature, ValueError):
        return None
    with transaction.atomic():
        consent = (
            Consent.objects.select_for_update()
            .select_related("contact")
            .filter(pk=consent_id)
            .first()
        )
        if consent is None:
            return None
        contact = consent.contact
        if contact.status in (Contact.Status.BOUNCED, Contact.Status.COMPLAINED):
            return consent
        if consent.confirmed_at is None:
            consent.confirmed_at = timezone.now()
            consent.save(update_fields=["confirmed_at"])
            webhooks.subscribed_enqueue(
                contact.pk, contact.email, consent.list_ids, consent.confirmed_at
            )
        Contact.objects.filter(
            pk=contact.pk, status__in=[Contact.Status.UNCONFIRMED, Contact.Status.UNSUBSCRIBED]
        ).update(status=Contact.Status.ACTIVE)
        # They asked, from their own mailbox: their earlier opt-out no longer applies.
        Suppression.objects.filter(
            kind=Suppression.Kind.EMAIL,
            value=contact.email.lower(),
            reason=Suppression.Reason.UNSUBSCRIBE,
        ).delete()
        Subscription.objects.filter(
            contact=contact,
            mailing_list_id__in=consent.list_ids,
            status=Subscription.Status.UNCONFIRMED,
        ).update(status=Subscription.Status.SUBSCRIBED)
    return consent

"""Writes for addresses, lists and contacts (see the package docstring for the rules)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from contacts import selectors
from contacts.models import Contact, MailingList, Subscription
from contacts.services.fields import contact_attributes_clean

log = logging.getLogger(__name__)

SUPPRESSED_STATUSES = frozenset(
    {Contact.Status.UNSUBSCRIBED, Contact.Status.BOUNCED, Contact.Status.COMPLAINED}
)
EMAIL_MAX_LENGTH = Contact._meta.get_field("email").max_length
NAME_MAX_LENGTH = Contact._meta.get_field("first_name").max_length
LIST_NAME_MAX_LENGTH = MailingList._meta.get_field("name").max_length


# --- Addresses ---------------------------------------------------------------------------


class _Rfc6531EmailValidator(EmailValidator):
    """Django's validator, with internationalised local parts (RFC 6531): a dot-atom may
    also hold any non-ASCII character other than spaces and controls, as SMTPUTF8 servers
    accept (``иван@пример.рф``). The domain rules (IDN included) are Django's."""

    user_regex = re.compile(
        r"(^[-!#$%&'*+/=?^_`{}|~0-9A-Z\u00a1-\U0010ffff]+"
        r"(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z\u00a1-\U0010ffff]+)*\Z"
        r'|^"([\001-\010\013\014\016-\037!#-\[\]-\177]|\\[\001-\011\013\014\016-\177])'
        r'*"\Z)',
        re.IGNORECASE,
    )

    def __call__(self, value: str) -> None:
        super().__call__(value)
        local = value.rpartition("@")[0]
        # The range above takes in Unicode spaces and invisible format characters too.
        if not local.isascii() and not local.isprintable():
            raise ValidationError(self.message, code=self.code, params={"value": value})


validate_email = _Rfc6531EmailValidator()

# Most addresses in a file: plain ASCII dot-atom at an ASCII host name with a letters-only
# top-level domain. Everything this matches the full validator accepts too (a test checks
# that), so a million-row import skips the validator's three regular expressions per row.
_COMMON_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{}|~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{}|~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def normalize_email(raw: str) -> str:
    """Return the address as stored: stripped, validated, domain lower-cased.

    The local part keeps its case (RFC 5321 lets a server treat it as case-sensitive);
    uniqueness is case-insensitive in the database. Surrounding whitespace (a trailing line
    break included) is dropped; a line break inside is refused before anything else, because
    an address ends up in message headers. Raises ValidationError.
    """
    value = (raw or "").strip()
    if len(value) <= EMAIL_MAX_LENGTH and _COMMON_ADDRESS.fullmatch(value):
        local, _at, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"
    if "\r" in value or "\n" in value:
        raise ValidationError(_("An email address cannot contain a line break."), code="invalid")
    if not value:
        raise ValidationError(_("Enter an email address."), code="required")
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            _("An email address can be at most %(max)s characters long.")
            % {"max": EMAIL_MAX_LENGTH},
            code="max_length",
        )
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError(
            _("“%(email)s” is not a valid email address.") % {"email": value}, code="invalid"
        ) from None
    local, _at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


# --- Lists -------------------------------------------------------------------------------


def _list_name_taken(name: str) -> ValidationError:
    return ValidationError({"name": _("A list named “%(name)s” already exists.") % {"name": name}})


def _mailing_list_clean_name(name: str, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the list a name.")})
    if len(name) > LIST_NAME_MAX_LENGTH:
        raise ValidationError(
            {
                "name": _("A list name can be at most %(max)s characters.")
                % {"max": LIST_NAME_MAX_LENGTH}
            }
        )
    if selectors.mailing_list_name_taken(name, exclude_pk=exclude_pk):
        raise _list_name_taken(name)
    return name


def mailing_list_create(*, name: str, description: str = "") -> MailingList:
    """Create a list; names are unique regardless of case. Raises ValidationError."""
    mailing_list = MailingList(name=_mailing_list_clean_name(name), description=description)
    try:
        with transaction.atomic():
            mailing_list.save()
    except IntegrityError:
        raise _list_name_taken(mailing_list.name) from None
    return mailing_list


def mailing_list_update(
    mailing_list: MailingList, *, name: str | None = None, description: str | None = None
) -> MailingList:
    """Rename or describe a list; the fields left as None stay. Raises ValidationError."""
    if name is not None:
        mailing_list.name = _mailing_list_clean_name(name, exclude_pk=mailing_list.pk)
    if description is not None:
        mailing_list.description = description
    try:
        with transaction.atomic():
            mailing_list.save()
    except IntegrityError:
        raise _list_name_taken(mailing_list.name) from None
    return mailing_list


def mailing_list_delete(mailing_list: MailingList) -> None:
    """Delete a list with its subscriptions and imports; the contacts themselves stay.

    The uploaded import files are removed from storage once the deletion is committed.
    """
    files = [
        (item.file.storage, item.file.name)
        for item in mailing_list.imports.exclude(file="").only("file")
    ]
    mailing_list.delete()

    def remove_files() -> None:
        for storage, name in files:
            try:
                storage.delete(name)
            except OSError:
                log.warning("Could not delete import file %s", name, exc_info=True)

    transaction.on_commit(remove_files)


# --- Contacts ----------------------------------------------------------------------------


def _email_taken(email: str) -> ValidationError:
    return ValidationError(
        {"email": _("A contact with the address “%(email)s” already exists.") % {"email": email}}
    )


def _contact_clean_email(email: str, exclude_pk: int | None = None) -> str:
    try:
        email = normalize_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": exc.messages}) from None
    if selectors.contact_email_taken(email, exclude_pk=exclude_pk):
        raise _email_taken(email)
    return email


def _contact_clean_attributes(attributes: Any) -> dict[str, Any]:
    """An object of names and values; values of custom fields typed (see services.fields)."""
    if not isinstance(attributes, dict):
        raise ValidationError(
            {"attributes": _("Attributes must be an object of names and values.")}
        )
    return contact_attributes_clean(attributes)


def _contact_check_status(status: str) -> None:
    if status not in Contact.Status.values:
        raise ValidationError(
            {"status": _("“%(status)s” is not a contact status.") % {"status": status}}
        )


def _contact_set_lists(contact: Contact, lists: Iterable[MailingList]) -> None:
    """Make the contact subscribed to exactly these lists.

    Subscriptions the person ended stay as they are: asking for one of those lists is
    refused rather than silently re-subscribing them, and they are kept (not deleted) when
    the list is left out, so the opt-out is remembered.
    """
    wanted = {ml.pk: ml for ml in lists}
    current = dict(
        Subscription.objects.filter(contact=contact).values_list("mailing_list_id", "status")
    )
    ended = [
        ml.name for pk, ml in wanted.items() if current.get(pk) == Subscription.Status.UNSUBSCRIBED
    ]
    if ended:
        raise ValidationError(
            {
                "lists": _("The contact unsubscribed from %(lists)s and cannot be added back.")
                % {"lists": ", ".join(f"“{name}”" for name in sorted(ended))}
            }
        )
    Subscription.objects.filter(contact=contact, status=Subscription.Status.SUBSCRIBED).exclude(
        mailing_list_id__in=wanted
    ).delete()
    Subscription.objects.bulk_create(
        [Subscription(contact=contact, mailing_list_id=pk) for pk in wanted if pk not in current],
        ignore_conflicts=True,
    )


def contact_create(
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    attributes: dict[str, Any] | None = None,
    status: str = Contact.Status.ACTIVE,
    lists: Iterable[MailingList] = (),
) -> Contact:
    """Create a contact subscribed to ``lists``.

    Raises ValidationError for an invalid or taken address or attributes that are not an
    object.
    """
    _contact_check_status(status)
    contact = Contact(
        email=_contact_clean_email(email),
        first_name=first_name,
        last_name=last_name,
        attributes=_contact_clean_attributes({} if attributes is None else attributes),
        status=status,
    )
    try:
        with transaction.atomic():
            contact.save()
            _contact_set_lists(contact, lists)
    except IntegrityError:
        # Another request created the same address between the check and the insert.
        raise _email_taken(email) from None
    return contact


def contact_update(
    contact: Contact,
    *,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    attributes: dict[str, Any] | None = None,
    status: str | None = None,
    lists: Iterable[MailingList] | None = None,
) -> Contact:
    """Change the given fields (None leaves a field as it is); ``attributes`` replaces them.

    Refuses, with ValidationError, to make a contact who unsubscribed, bounced or
    complained active again: that is the person's decision or their mailbox's, not ours.
    """
    if email is not None and email.strip() != contact.email:
        contact.email = _contact_clean_email(email, exclude_pk=contact.pk)
    if first_name is not None:
        contact.first_name = first_name
    if last_name is not None:
        contact.last_name = last_name
    if attributes is not None:
        contact.attributes = _contact_clean_attributes(attributes)
    if status is not None and status != contact.status:
        _contact_check_status(status)
        if contact.status in SUPPRESSED_STATUSES and status == Contact.Status.ACTIVE:
            raise ValidationError(
                {
                    "status": _(
                        "A contact who unsubscribed, bounced or complained cannot be made "
                        "active again."
                    )
                }
            )
        contact.status = status
    try:
        with transaction.atomic():
            contact.save()
            if lists is not None:
                _contact_set_lists(contact, lists)
    except IntegrityError:
        raise _email_taken(contact.email) from None
    return contact


def contact_delete(contact: Contact) -> None:
    """Delete a contact with its subscriptions."""
    contact.delete()

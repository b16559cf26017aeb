"""Custom fields: defining them, and turning raw input into typed attribute values.

One function (``custom_value_clean``) decides what a valid value of each type is, and the
form, the API and the importer all go through it, so a value accepted in one place is
accepted everywhere and stored the same way.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from contacts.models import CustomField

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
TEXT_MAX_LENGTH = 1000
MAX_OPTIONS = 200
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "t", "да", "oui", "ja", "si", "sí"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off", "f", "нет", "non", "nein"})
# Accepted date spellings besides ISO; day first, as everywhere but the US (whose
# month-first form is ambiguous with it, so it is refused rather than guessed).
DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d")


# --- Values ------------------------------------------------------------------------------


# A plain integer as a file holds it; 15 digits stay below 2**53, so it is stored as is.
_PLAIN_INTEGER = re.compile(r"-?[0-9]{1,15}")


def _clean_number(value: Any) -> int | float:
    if isinstance(value, str) and _PLAIN_INTEGER.fullmatch(value):
        return int(value)
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    text = str(value).strip().replace("\u00a0", "").replace(" ", "")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError from None
    if not number.is_finite():
        raise ValueError
    if number == number.to_integral_value() and abs(number) < 2**53:
        return int(number)
    return float(number)


def _clean_date(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.date().isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = str(value).strip()
    # An ISO timestamp ("2024-05-01T10:00:00Z", as exported by most services) keeps its date.
    if len(text) > 10 and text[4:5] == "-" and text[10] in "T ":
        text = text[:10]
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text.isascii():
        # The common spelling, without strptime's locale machinery (the first format).
        try:
            datetime.date.fromisoformat(text)  # valid: it is stored as written
        except ValueError:
            pass
        else:
            return text
    for fmt in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt).date().isoformat()  # noqa: DTZ007
        except ValueError:
            continue
    raise ValueError


def _clean_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().casefold()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError


def _type_message(field: CustomField) -> str:
    messages = {
        CustomField.Type.NUMBER: _("“%(field)s” must be a number."),
        CustomField.Type.DATE: _("“%(field)s” must be a date, like 2024-05-31 or 31.05.2024."),
        CustomField.Type.BOOLEAN: _("“%(field)s” must be yes or no (true/false, 1/0)."),
        CustomField.Type.CHOICE: _("“%(field)s” must be one of: %(options)s."),
        CustomField.Type.TEXT: _("“%(field)s” can be at most %(max)s characters."),
    }
    return messages[CustomField.Type(field.type)] % {
        "field": field.label,
        "options": ", ".join(str(o) for o in field.options),
        "max": TEXT_MAX_LENGTH,
    }


def custom_value_clean(field: CustomField, value: Any) -> Any:
    """Return ``value`` as stored for ``field``; None for an empty value (the key is unset).

    Text is stripped; numbers become int or float; dates an ISO date string; booleans a
    bool; a choice the option as defined (matched ignoring case). Raises ValidationError
    with a message naming the field.
    """
    return custom_value_cleaner(field)(value)


def custom_value_cleaner(field: CustomField) -> Callable[[Any], Any]:
    """``custom_value_clean`` for one field, with the field's type looked up once: the
    importer types millions of values of the same few fields."""
    typed = custom_value_parser(field)

    def clean(value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return typed(value)
        except ValueError:
            raise ValidationError(_type_message(field), code="bad_value") from None

    return clean


def custom_value_parser(field: CustomField) -> Callable[[Any], Any]:
    """The typing step of ``custom_value_cleaner`` alone, for a value known not to be
    empty (the importer's cells are stripped and empty ones left out): the value as
    stored, or ValueError. Saves the importer a call and a test per value."""
    field_type = CustomField.Type(field.type)
    typed: Callable[[Any], Any]
    if field_type == CustomField.Type.NUMBER:
        typed = _clean_number
    elif field_type == CustomField.Type.DATE:
        typed = _clean_date
    elif field_type == CustomField.Type.BOOLEAN:
        typed = _clean_boolean
    elif field_type == CustomField.Type.CHOICE:
        options = {str(option).casefold(): option for option in reversed(field.options)}

        def typed(value: Any) -> Any:
            if isinstance(value, dict | list):
                raise ValueError
            try:
                return options[str(value).strip().casefold()]
            except KeyError:
                raise ValueError from None
    else:

        def typed(value: Any) -> Any:
            if isinstance(value, dict | list):
                raise ValueError
            text = str(value).strip()
            if len(text) > TEXT_MAX_LENGTH:
                raise ValueError
            return text

    return typed


def custom_fields_by_key() -> dict[str, CustomField]:
    return {field.key: field for field in CustomField.objects.all()}


def contact_attributes_clean(
    attributes: Mapping[str, Any], fields: Mapping[str, CustomField] | None = None
) -> dict[str, Any]:
    """Type the values of defined fields and drop empty ones; other keys pass unchanged.

    Raises one ValidationError listing every bad value (``{"attributes": [...]}``).
    """
    if fields is None:
        fields = custom_fields_by_key()
    cleaned: dict[str, Any] = {}
    errors: list[str] = []
    for key, value in attributes.items():
        field = fields.get(key)
        if field is None:
            cleaned[key] = value
            continue
        try:
            typed = custom_value_clean(field, value)
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if typed is not None:
            cleaned[key] = typed
    if errors:
        raise ValidationError({"attributes": errors})
    return cleaned


# --- Definitions -------------------------------------------------------------------------


def _clean_options(field_type: str, options: Iterable[Any] | None) -> list[str]:
    if field_type != CustomField.Type.CHOICE:
        return []
    cleaned: list[str] = []
    for option in options or []:
        text = str(option).strip()
        if text and text.casefold() not in {o.casefold() for o in cleaned}:
            cleaned.append(text[:200])
    if not cleaned:
        raise ValidationError({"options": _("A choice field needs at least one option.")})
    if len(cleaned) > MAX_OPTIONS:
        raise ValidationError(
            {
                "options": _("A choice field can have at most %(max)s options.")
                % {"max": MAX_OPTIONS}
            }
        )
    return cleaned


def _clean_key(key: str, exclude_pk: int | None = None) -> str:
    key = (key or "").strip()
    if not KEY_RE.match(key):
        raise ValidationError(
            {
                "key": _(
                    "A key starts with a lower-case letter and has only lower-case letters, "
                    "digits and underscores (at most 50), like “city” or “signup_date”."
                )
            }
        )
    taken = CustomField.objects.filter(key=key)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise _key_taken(key)
    return key


def _key_taken(key: str) -> ValidationError:
    return ValidationError(
        {"key": _("A field with the key “%(key)s” exists already.") % {"key": key}}
    )


def _clean_label(label: str) -> str:
    label = (label or "").strip()
    if not label:
        raise ValidationError({"label": _("Give the field a label.")})
    return label[:100]


def _clean_type(field_type: str) -> str:
    if field_type not in CustomField.Type.values:
        raise ValidationError(
            {
                "type": _("The type must be one of: %(types)s.")
                % {"types": ", ".join(CustomField.Type.values)}
            }
        )
    return field_type


def custom_field_create(
    *,
    key: str,
    label: str,
    type: str = CustomField.Type.TEXT,
    options: Iterable[Any] = (),
) -> CustomField:
    """Define a field. Existing attribute values under ``key`` are left as they are.

    Raises ValidationError for a malformed or taken key, an unknown type, or a choice
    without options.
    """
    field_type = _clean_type(type)
    field = CustomField(
        key=_clean_key(key),
        label=_clean_label(label),
        type=field_type,
        options=_clean_options(field_type, options),
    )
    try:
        with transaction.atomic():
            field.save()
    except IntegrityError:
        raise _key_taken(field.key) from None
    _index_sync_on_commit(field.pk)
    return field


def _index_sync_on_commit(field_id: int) -> None:
    """Create, replace or drop the field's expression index (PostgreSQL) after the commit."""
    from contacts.tasks import custom_field_index_sync_task

    transaction.on_commit(lambda: custom_field_index_sync_task.delay(field_id))


def custom_field_update(
    field: CustomField,
    *,
    label: str | None = None,
    type: str | None = None,
    options: Iterable[Any] | None = None,
    key: str | None = None,
) -> CustomField:
    """Relabel a field, change its type or options. The key cannot change: templates and
    segments refer to it, and the stored values live under it."""
    if key is not None and key != field.key:
        raise ValidationError(
            {"key": _("The key of a field cannot change; create a new field instead.")}
        )
    old_type = field.type
    if label is not None:
        field.label = _clean_label(label)
    if type is not None:
        field.type = _clean_type(type)
    if options is not None or type is not None:
        field.options = _clean_options(
            field.type, options if options is not None else field.options
        )
    field.save()
    if field.type != old_type:
        _index_sync_on_commit(field.pk)
    return field


def custom_field_delete(field: CustomField) -> None:
    """Forget the definition; the values stay in the contacts' attributes, untyped."""
    field_id = field.pk
    field.delete()
    _index_sync_on_commit(field_id)

"""Segment rules: what a rule may say, checking it, and compiling it to one query.

A rule is a group ``{"op": "and"|"or", "rules": [...]}`` whose items are conditions or
nested groups. A condition is ``{"field": F, "op": OP, "value": V}``:

- ``email``, ``first_name``, ``last_name``, ``domain``: text operators, ignoring case;
- ``custom.<key>``: a custom field, with the operators of its type (``OPERATORS``);
- ``list``: ``in`` / ``not_in`` a list (value: list id; subscribed members only);
- ``subscribed``: ``before`` / ``after`` a date, or ``within_days`` N, optionally of one
  list (``"list": id``);
- ``opened``, ``clicked``, ``sent``, ``bounced``, ``unsubscribed``, ``complained``,
  ``activity`` (any of those events): ``campaign`` / ``not_campaign`` (value: campaign id),
  ``within_days`` / ``not_within_days`` (value: N), any campaign. ``bounced`` takes an
  optional ``"severity": "hard"|"soft"``;
- ``machine_only``: ``campaign`` / ``not_campaign``: the campaign's message was opened or
  clicked only by software (the report's "Machine only" list).

Opens and clicks are people's: ``opened`` and ``clicked`` leave out what tracking.machine
flagged (Apple Mail Privacy Protection prefetches, link scanners, bots), as the report's
headline figures and its "Opened" / "Clicked" lists do, so a list saved from the report
as a segment holds the same people. ``activity`` counts every event, machines' included,
like the report's "Any activity" list. A ``soft`` bounce is one of a message that never
bounced hard; the report counts a message that did both as hard.

``segment_rules_clean`` returns the rule with typed values or raises ValidationError with
one message per problem. ``segment_q`` turns a clean rule into a ``Q`` over Contact made of
column comparisons, typed JSON expressions and ``IN (subquery)`` parts, so a segment is
always one SQL statement, never a loop over contacts.

Custom-field values are compared as their type on SQLite and PostgreSQL alike: a value
whose JSON type does not match the field's (text left in a number field by an import that
predates the field) counts as not set rather than being compared as text or breaking the
query with a cast error.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import (
    BooleanField,
    CharField,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    Value,
)
from django.db.models.functions import Lower, StrIndex, Substr
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IsNull,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import CustomField

MAX_DEPTH = 5
MAX_CONDITIONS = 100
MAX_DAYS = 36500

TEXT = "text"
TEXT_OPS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "is_set",
    "not_set",
)
OPERATORS: dict[str, tuple[str, ...]] = {
    CustomField.Type.TEXT: TEXT_OPS,
    CustomField.Type.NUMBER: (
        "equals",
        "not_equals",
        "gt",
        "gte",
        "lt",
        "lte",
        "is_set",
        "not_set",
    ),
    CustomField.Type.DATE: ("equals", "before", "after", "is_set", "not_set"),
    CustomField.Type.BOOLEAN: ("is_true", "is_false", "is_set", "not_set"),
    CustomField.Type.CHOICE: ("equals", "not_equals", "is_set", "not_set"),
}
BUILTIN_TEXT_FIELDS = ("email", "domain", "first_name", "last_name")
NO_VALUE_OPS = frozenset({"is_set", "not_set", "is_true", "is_false"})
LIST_OPS = ("in", "not_in")
SUBSCRIBED_OPS = ("before", "after", "within_days")
ENGAGEMENT_FIELDS = (
    "opened",
    "clicked",
    "sent",
    "bounced",
    "unsubscribed",
    "complained",
    "activity",
)
ENGAGEMENT_OPS = ("campaign", "not_campaign", "within_days", "not_within_days")
MACHINE_ONLY = "machine_only"
CAMPAIGN_OPS = ("campaign", "not_campaign")
BOUNCE_SEVERITIES = ("hard", "soft")
# The tracking.models.Event kind behind each event condition ("activity" is any kind).
EVENT_KINDS = {
    "opened": "open",
    "clicked": "click",
    "bounced": "bounce",
    "unsubscribed": "unsubscribe",
    "complained": "complaint",
}
CUSTOM_PREFIX = "custom."


def operator_labels() -> dict[str, str]:
    """What the rule builder shows for each operator."""
    return {
        "equals": _("is"),
        "not_equals": _("is not"),
        "contains": _("contains"),
        "not_contains": _("does not contain"),
        "starts_with": _("starts with"),
        "ends_with": _("ends with"),
        "is_set": _("is set"),
        "not_set": _("is not set"),
        "gt": _("is greater than"),
        "gte": _("is at least"),
        "lt": _("is less than"),
        "lte": _("is at most"),
        "before": _("is before"),
        "after": _("is after"),
        "is_true": _("is yes"),
        "is_false": _("is no"),
        "in": _("is in"),
        "not_in": _("is not in"),
        "within_days": _("in the last N days"),
        "campaign": _("campaign"),
        "not_campaign": _("not campaign"),
        "not_within_days": _("not in the last N days"),
    }


# --- Typed JSON attribute expressions ----------------------------------------------------


class _Attribute(Func):
    """The value of ``attributes[key]`` as one SQL type, NULL when it is not of that type.

    The key is passed as a query parameter, never spliced into the SQL.
    """

    sqlite_types: tuple[str, ...] = ()
    sqlite_value = "json_extract({lhs}, %s)"
    pg_type = ""
    pg_value = "({lhs} ->> %s)"

    def __init__(self, key: str) -> None:
        super().__init__(F("attributes"))
        self.key = key

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.key}"'
        types = ", ".join(f"'{t}'" for t in self.sqlite_types)
        value = self.sqlite_value.format(lhs=lhs)
        sql = f"(CASE WHEN json_type({lhs}, %s) IN ({types}) THEN {value} END)"
        return sql, [*params, path, *params, path]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        value = self.pg_value.format(lhs=lhs)
        sql = f"(CASE WHEN jsonb_typeof({lhs} -> %s) = '{self.pg_type}' THEN {value} END)"
        return sql, [*params, self.key, *params, self.key]

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        raise NotImplementedError(
            f"Segments support SQLite and PostgreSQL, not {connection.vendor}"
        )


class AttributeNumber(_Attribute):
    output_field = FloatField()
    sqlite_types = ("integer", "real")
    pg_type = "number"
    pg_value = "(({lhs} ->> %s)::numeric)"


class AttributeText(_Attribute):
    """Text values; numbers are read as text too, so a text field filled by hand with
    digits ("12345" typed as a number in the API) still matches."""

    output_field = CharField()
    sqlite_types = ("text", "integer", "real")
    sqlite_value = "CAST(json_extract({lhs}, %s) AS TEXT)"
    pg_type = "string"

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"(CASE WHEN jsonb_typeof({lhs} -> %s) IN ('string', 'number') THEN ({lhs} ->> %s) END)"
        )
        return sql, [*params, self.key, *params, self.key]


class AttributeDate(_Attribute):
    """Dates stored as ISO ``YYYY-MM-DD`` text, which order as dates. Anything not of that
    shape is NULL, so a stray "31.05.2024" is never compared as text."""

    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.key}"'
        sql = (
            f"(CASE WHEN json_type({lhs}, %s) = 'text' AND json_extract({lhs}, %s) GLOB "
            "'[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]' "
            f"THEN json_extract({lhs}, %s) END)"
        )
        return sql, [*params, path, *params, path, *params, path]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"(CASE WHEN jsonb_typeof({lhs} -> %s) = 'string' AND ({lhs} ->> %s) ~ "
            f"'^[0-9]{{4}}-[0-1][0-9]-[0-3][0-9]$' THEN ({lhs} ->> %s) END)"
        )
        return sql, [*params, self.key, *params, self.key, *params, self.key]


class AttributeBoolean(_Attribute):
    output_field = BooleanField()
    sqlite_types = ("true", "false")
    pg_type = "boolean"
    pg_value = "(({lhs} ->> %s)::boolean)"


ATTRIBUTE_EXPRESSIONS: dict[str, type[_Attribute]] = {
    CustomField.Type.TEXT: AttributeText,
    CustomField.Type.CHOICE: AttributeText,
    CustomField.Type.NUMBER: AttributeNumber,
    CustomField.Type.DATE: AttributeDate,
    CustomField.Type.BOOLEAN: AttributeBoolean,
}


def email_domain() -> Func:
    """The part of the address after its last-written "@" (domains are stored lower-case)."""
    return Substr("email", StrIndex("email", Value("@")) + 1)


# --- Validation ---------------------------------------------------------------------------


class _Checker:
    def __init__(self, fields: Mapping[str, CustomField]) -> None:
        self.fields = fields
        self.errors: list[str] = []
        self.conditions = 0
        self.list_ids: set[int] = set()
        self.campaign_ids: set[int] = set()

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}" if where else message)

    def group(self, node: Any, where: str, depth: int) -> dict[str, Any] | None:
        if not isinstance(node, dict):
            self.error(where, _("a group must be an object with “op” and “rules”."))
            return None
        op = node.get("op", "and")
        if op not in ("and", "or"):
            self.error(where, _("a group combines its rules with “and” or “or”."))
        items = node.get("rules", [])
        if not isinstance(items, list):
            self.error(where, _("“rules” must be a list."))
            return None
        if depth > MAX_DEPTH:
            self.error(where, _("groups can be nested at most %(max)s deep.") % {"max": MAX_DEPTH})
            return None
        if not items and depth > 1:
            self.error(where, _("this group is empty; add a condition or remove it."))
        clean_items = []
        for index, item in enumerate(items, start=1):
            label = f"{where}.{index}" if where else str(index)
            if isinstance(item, dict) and "rules" in item:
                cleaned = self.group(item, label, depth + 1)
            else:
                cleaned = self.condition(item, label)
            if cleaned is not None:
                clean_items.append(cleaned)
        return {"op": op, "rules": clean_items}

    def condition(self, node: Any, where: str) -> dict[str, Any] | None:
        where = _("Condition %(number)s") % {"number": where}
        self.conditions += 1
        if not isinstance(node, dict):
            self.error(where, _("a condition must be an object with “field”, “op” and “value”."))
            return None
        field = node.get("field")
        op = node.get("op")
        value = node.get("value")
        if not isinstance(field, str) or not field:
            self.error(where, _("choose a field."))
            return None
        if field in BUILTIN_TEXT_FIELDS:
            return self._text(where, field, op, value)
        if field.startswith(CUSTOM_PREFIX):
            return self._custom(where, field, op, value)
        if field == "list":
            if op not in LIST_OPS:
                return self._bad_op(where, field, op, LIST_OPS)
            list_id = self._id(where, value, _("choose a list."))
            if list_id is None:
                return None
            self.list_ids.add(list_id)
            return {"field": field, "op": op, "value": list_id}
        if field == "subscribed":
            return self._subscribed(where, node, op, value)
        if field in ENGAGEMENT_FIELDS or field == MACHINE_ONLY:
            return self._engagement(where, node, field, op, value)
        self.error(where, _("“%(field)s” is not a field you can filter on.") % {"field": field})
        return None

    def _engagement(
        self, where: str, node: dict, field: str, op: Any, value: Any
    ) -> dict[str, Any] | None:
        allowed = CAMPAIGN_OPS if field == MACHINE_ONLY else ENGAGEMENT_OPS
        if op not in allowed:
            return self._bad_op(where, field, op, allowed)
        clean: dict[str, Any] = {"field": field, "op": op}
        severity = node.get("severity")
        if field == "bounced" and severity not in (None, ""):
            if severity not in BOUNCE_SEVERITIES:
                self.error(where, _("choose hard or soft bounces, or leave it empty for both."))
                return None
            clean["severity"] = severity
        if op in CAMPAIGN_OPS:
            typed = self._id(where, value, _("choose a campaign."))
            if typed is not None:
                self.campaign_ids.add(typed)
        else:
            typed = self._days(where, value)
        if typed is None:
            return None
        clean["value"] = typed
        return clean

    def _bad_op(self, where: str, field: str, op: Any, allowed: tuple[str, ...]) -> None:
        self.error(
            where,
            _("“%(op)s” does not apply to %(field)s; use one of: %(ops)s.")
            % {"op": op, "field": field, "ops": ", ".join(allowed)},
        )

    def _id(self, where: str, value: Any, message: str) -> int | None:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.error(where, message)
            return None
        return value

    def _days(self, where: str, value: Any) -> int | None:
        try:
            days = int(str(value).strip())
        except ValueError:
            days = 0
        if not 1 <= days <= MAX_DAYS:
            self.error(where, _("give a number of days, at least 1."))
            return None
        return days

    def _date(self, where: str, value: Any) -> str | None:
        try:
            return datetime.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            self.error(where, _("give a date as YYYY-MM-DD."))
            return None

    def _text(self, where: str, field: str, op: Any, value: Any) -> dict[str, Any] | None:
        if op not in TEXT_OPS:
            return self._bad_op(where, field, op, TEXT_OPS)
        if op in NO_VALUE_OPS:
            return {"field": field, "op": op}
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.error(where, _("give a text value."))
            return None
        text = str(value).strip()
        if not text:
            self.error(where, _("give a value, or use “is set” / “is not set”."))
            return None
        return {"field": field, "op": op, "value": text[:1000]}

    def _custom(self, where: str, field: str, op: Any, value: Any) -> dict[str, Any] | None:
        from contacts.services.fields import custom_value_clean

        custom = self.fields.get(field[len(CUSTOM_PREFIX) :])
        if custom is None:
            self.error(
                where,
                _("there is no custom field “%(key)s”.") % {"key": field[len(CUSTOM_PREFIX) :]},
            )
            return None
        allowed = OPERATORS[custom.type]
        if op not in allowed:
            return self._bad_op(where, custom.label, op, allowed)
        if op in NO_VALUE_OPS:
            return {"field": field, "op": op}
        if custom.type == CustomField.Type.TEXT:
            return self._text(where, field, op, value)
        try:
            typed = custom_value_clean(custom, value)
        except ValidationError as exc:
            self.error(where, exc.messages[0])
            return None
        if typed is None:
            self.error(where, _("give a value, or use “is set” / “is not set”."))
            return None
        return {"field": field, "op": op, "value": typed}

    def _subscribed(self, where: str, node: dict, op: Any, value: Any) -> dict[str, Any] | None:
        if op not in SUBSCRIBED_OPS:
            return self._bad_op(where, "subscribed", op, SUBSCRIBED_OPS)
        clean: dict[str, Any] = {"field": "subscribed", "op": op}
        if node.get("list") not in (None, ""):
            list_id = self._id(where, node["list"], _("choose a list, or leave it empty."))
            if list_id is None:
                return None
            self.list_ids.add(list_id)
            clean["list"] = list_id
        typed = self._days(where, value) if op == "within_days" else self._date(where, value)
        if typed is None:
            return None
        clean["value"] = typed
        return clean


def segment_rules_clean(
    rules: Any, fields: Mapping[str, CustomField] | None = None
) -> dict[str, Any]:
    """Check a rule and return it with typed values; raise ValidationError listing problems.

    Lists and campaigns a condition names must exist. Empty rules (``{}`` or no conditions
    at the top) match every contact.
    """
    from campaigns.models import Campaign
    from contacts.models import MailingList
    from contacts.services.fields import custom_fields_by_key

    if rules in (None, {}, ""):
        rules = {"op": "and", "rules": []}
    checker = _Checker(custom_fields_by_key() if fields is None else fields)
    cleaned = checker.group(rules, "", 1)
    if checker.conditions > MAX_CONDITIONS:
        checker.error(
            "", _("A segment can have at most %(max)s conditions.") % {"max": MAX_CONDITIONS}
        )
    missing_lists = checker.list_ids - set(
        MailingList.objects.filter(pk__in=checker.list_ids).values_list("pk", flat=True)
    )
    for pk in sorted(missing_lists):
        checker.error("", _("There is no list with id %(id)s.") % {"id": pk})
    missing_campaigns = checker.campaign_ids - set(
        Campaign.objects.filter(pk__in=checker.campaign_ids).values_list("pk", flat=True)
    )
    for pk in sorted(missing_campaigns):
        checker.error("", _("There is no campaign with id %(id)s.") % {"id": pk})
    if checker.errors or cleaned is None:
        raise ValidationError({"rules": checker.errors or [_("The rules are not valid.")]})
    return cleaned


def rules_campaign_ids(rules: Any) -> set[int]:
    """The campaign ids that the conditions of a (clean) rule name."""
    ids: set[int] = set()
    stack = [rules]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if "rules" in node and isinstance(node["rules"], list):
            stack.extend(node["rules"])
        elif node.get("op") in CAMPAIGN_OPS and isinstance(node.get("value"), int):
            ids.add(node["value"])
    return ids


# --- Compilation --------------------------------------------------------------------------


def _not(condition: Q, value_expression: Any | None = None) -> Q:
    """NOT condition, where a missing value counts as "not": ``city is not Lisbon`` matches
    contacts with no city. SQL's NOT on NULL is NULL, hence the explicit IS NULL."""
    if value_expression is None:
        return ~condition
    return Q(IsNull(value_expression, True)) | ~condition


def _text_q(field: str, op: str, value: str | None) -> Q:
    if field == "domain":
        expression: Any = Lower(email_domain())
        if op == "equals":
            # Matches the stored form (domain lower-cased) without computing the domain.
            return Q(email__iendswith="@" + str(value).lower())
        if op == "not_equals":
            return ~Q(email__iendswith="@" + str(value).lower())
    elif field.startswith(CUSTOM_PREFIX):
        expression = Lower(AttributeText(field[len(CUSTOM_PREFIX) :]))
    else:
        expression = Lower(F(field))
    if op == "is_set":
        return Q(IsNull(expression, False)) & ~Q(Exact(expression, ""))
    if op == "not_set":
        return Q(IsNull(expression, True)) | Q(Exact(expression, ""))
    text = str(value).lower()
    lookups = {
        "equals": Exact(expression, text),
        "contains": IContains(expression, text),
        "starts_with": IStartsWith(expression, text),
        "ends_with": _ends_with(expression, text),
    }
    if op in lookups:
        return Q(lookups[op])
    positive = {"not_equals": "equals", "not_contains": "contains"}[op]
    return _not(Q(lookups[positive]), expression if field.startswith(CUSTOM_PREFIX) else None)


def _ends_with(expression: Any, text: str) -> Any:
    from django.db.models.lookups import IEndsWith

    return IEndsWith(expression, text)


def _custom_q(custom: CustomField, op: str, value: Any) -> Q:
    if custom.type == CustomField.Type.TEXT:
        return _text_q(CUSTOM_PREFIX + custom.key, op, value)
    expression = ATTRIBUTE_EXPRESSIONS[custom.type](custom.key)
    if op == "is_set":
        return Q(IsNull(expression, False))
    if op == "not_set":
        return Q(IsNull(expression, True))
    if op == "is_true":
        return Q(Exact(expression, True))
    if op == "is_false":
        return Q(Exact(expression, False))
    lookups = {
        "equals": Exact,
        "gt": GreaterThan,
        "after": GreaterThan,
        "gte": GreaterThanOrEqual,
        "lt": LessThan,
        "before": LessThan,
        "lte": LessThanOrEqual,
    }
    if op == "not_equals":
        return _not(Q(Exact(expression, value)), expression)
    return Q(lookups[op](expression, value))


def _day_start(iso_date: str) -> datetime.datetime:
    return datetime.datetime.combine(
        datetime.date.fromisoformat(iso_date), datetime.time.min, tzinfo=datetime.UTC
    )


def _condition_q(
    node: dict[str, Any], fields: Mapping[str, CustomField], now: datetime.datetime
) -> Q:
    from contacts.models import Subscription

    field, op, value = node["field"], node["op"], node.get("value")
    if field in BUILTIN_TEXT_FIELDS:
        return _text_q(field, op, value)
    if field.startswith(CUSTOM_PREFIX):
        custom = fields.get(field[len(CUSTOM_PREFIX) :])
        if custom is None:
            # The field was deleted after the segment was saved: the condition matches no one.
            return Q(pk__in=[])
        return _custom_q(custom, op, value)
    if field == "list":
        members = Subscription.objects.filter(
            mailing_list_id=value, status=Subscription.Status.SUBSCRIBED
        ).values("contact_id")
        return Q(id__in=members) if op == "in" else ~Q(id__in=members)
    if field == "subscribed":
        subscriptions = Subscription.objects.filter(status=Subscription.Status.SUBSCRIBED)
        if node.get("list"):
            subscriptions = subscriptions.filter(mailing_list_id=node["list"])
        if op == "within_days":
            subscriptions = subscriptions.filter(
                created_at__gte=now - datetime.timedelta(days=value)
            )
        elif op == "before":
            subscriptions = subscriptions.filter(created_at__lt=_day_start(value))
        else:
            after = _day_start(value) + datetime.timedelta(days=1)
            subscriptions = subscriptions.filter(created_at__gte=after)
        return Q(id__in=subscriptions.values("contact_id"))
    return _engagement_q(node, now)


def _engagement_q(node: dict[str, Any], now: datetime.datetime) -> Q:
    """Contacts whose messages were sent, or had events of a kind, in a campaign or lately:
    ``id IN (one subquery on messages or events)``, negated for the ``not_`` operators."""
    from campaigns.models import Message
    from tracking.models import Event

    field, op, value = node["field"], node["op"], node["value"]
    if field == MACHINE_ONLY:
        return _machine_only_q(op, value)
    if field == "sent":
        done = Message.objects.filter(status=Message.Status.SENT)
        time_field = "sent_at"
        contact_column = "contact_id"
    else:
        done = Event.objects.all()
        if field != "activity":
            done = done.filter(kind=EVENT_KINDS[field])
        if field in ("opened", "clicked"):
            done = done.filter(is_machine=False)
        if node.get("severity") == "hard":
            done = done.filter(severity=Event.Severity.HARD)
        elif node.get("severity") == "soft":
            hard = Event.objects.filter(
                kind=Event.Kind.BOUNCE,
                severity=Event.Severity.HARD,
                message_id=OuterRef("message_id"),
            )
            done = done.exclude(Exists(hard))
        time_field = "created_at"
        contact_column = "message__contact_id"
    if op in CAMPAIGN_OPS:
        done = done.filter(campaign_id=value)
    else:
        done = done.filter(**{f"{time_field}__gte": now - datetime.timedelta(days=value)})
    matched = Q(id__in=done.values(contact_column))
    return matched if op in ("campaign", "within_days") else ~matched


def _machine_only_q(op: str, campaign_id: int) -> Q:
    """Contacts whose message of the campaign was opened, or clicked, by software and never
    by a person (tracking.selectors.RECIPIENT_FILTERS["machine"], from the events)."""
    from campaigns.models import Message
    from tracking.models import Event

    def happened(kind: str, machine: bool) -> Exists:
        return Exists(
            Event.objects.filter(message_id=OuterRef("pk"), kind=kind, is_machine=machine)
        )

    open_, click = Event.Kind.OPEN, Event.Kind.CLICK
    messages = Message.objects.filter(campaign_id=campaign_id).filter(
        (Q(happened(open_, True)) & ~Q(happened(open_, False)))
        | (Q(happened(click, True)) & ~Q(happened(click, False)))
    )
    matched = Q(id__in=messages.values("contact_id"))
    return matched if op == "campaign" else ~matched


def _group_q(node: dict[str, Any], fields: Mapping[str, CustomField], now: datetime.datetime) -> Q:
    parts = [
        _group_q(item, fields, now) if "rules" in item else _condition_q(item, fields, now)
        for item in node["rules"]
    ]
    if not parts:
        return Q() if node["op"] == "and" else Q(pk__in=[])
    combined = parts[0]
    for part in parts[1:]:
        combined = combined & part if node["op"] == "and" else combined | part
    return combined


def segment_q(
    rules: dict[str, Any],
    fields: Mapping[str, CustomField] | None = None,
    now: datetime.datetime | None = None,
) -> Q:
    """Compile clean rules (see ``segment_rules_clean``) to a Q over Contact.

    ``now`` anchors "in the last N days"; it defaults to the current time.
    """
    from contacts.services.fields import custom_fields_by_key

    if not rules:
        return Q()
    return _group_q(
        rules,
        custom_fields_by_key() if fields is None else fields,
        now or timezone.now(),
    )

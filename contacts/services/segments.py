"""Writes for segments, and for the segments and exclusions of a campaign's audience."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from contacts.models import MailingList, Segment
from contacts.segments import segment_rules_clean

NAME_MAX_LENGTH = Segment._meta.get_field("name").max_length


def _name_taken(name: str) -> ValidationError:
    return ValidationError(
        {"name": _("A segment named “%(name)s” already exists.") % {"name": name}}
    )


def _clean_name(name: str, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give the segment a name.")})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            {
                "name": _("A segment name can be at most %(max)s characters.")
                % {"max": NAME_MAX_LENGTH}
            }
        )
    taken = Segment.objects.filter(name__iexact=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise _name_taken(name)
    return name


def _save(segment: Segment) -> Segment:
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError:
        raise _name_taken(segment.name) from None
    return segment


def segment_create(*, name: str, rules: Any, description: str = "") -> Segment:
    """Create a segment; the rules are checked and stored with typed values.

    Raises ValidationError (``name`` or ``rules``, one message per problem).
    """
    errors: dict[str, Any] = {}
    segment = Segment(description=description or "")
    try:
        segment.name = _clean_name(name)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        segment.rules = segment_rules_clean(rules)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return _save(segment)


def segment_update(
    segment: Segment,
    *,
    name: str | None = None,
    rules: Any = None,
    description: str | None = None,
) -> Segment:
    """Change the given parts (None leaves one as it is). Raises ValidationError."""
    if name is not None:
        segment.name = _clean_name(name, exclude_pk=segment.pk)
    if rules is not None:
        segment.rules = segment_rules_clean(rules)
    if description is not None:
        segment.description = description
    return _save(segment)


def segment_delete(segment: Segment) -> None:
    """Delete a segment; campaigns that used it keep their lists and other segments."""
    segment.delete()


def campaign_audience_set(
    campaign: Any,
    *,
    segments: Iterable[Segment | int] | None = None,
    excluded_segments: Iterable[Segment | int] | None = None,
    excluded_lists: Iterable[MailingList | int] | None = None,
) -> None:
    """Set which segments a draft campaign goes to, and which lists and segments it skips.

    None leaves a part as it is. The audience is frozen when the campaign starts, so only
    drafts can change; raises ValidationError otherwise.
    """
    from campaigns.models import Campaign

    if campaign.status != Campaign.Status.DRAFT:
        raise ValidationError(_("Only a draft campaign's audience can change."))
    with transaction.atomic():
        if segments is not None:
            campaign.segments.set(segments)
        if excluded_segments is not None:
            campaign.excluded_segments.set(excluded_segments)
        if excluded_lists is not None:
            campaign.excluded_lists.set(excluded_lists)

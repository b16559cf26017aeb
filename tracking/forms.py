"""Forms of the marketer-facing tracking pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from contacts.models import Segment


class RecipientsSegmentForm(forms.Form):
    """Save a report's recipients list (one filter of it) as a segment."""

    name = forms.CharField(
        label=_("Segment name"),
        max_length=Segment._meta.get_field("name").max_length,
        error_messages={"required": _("Give the segment a name.")},
    )
    # Which list; checked against the report's filters by the view.
    what = forms.CharField(required=False, widget=forms.HiddenInput)

"""The tags and filters a campaign template may use: Django's, minus anything that reaches
outside the template (loading libraries or files, reversing URLs, dumping the context)."""

from __future__ import annotations

from django.template import defaultfilters, defaulttags
from django.template.library import Library

FORBIDDEN_TAGS = frozenset(
    {"load", "include", "extends", "block", "debug", "ssi", "url", "csrf_token", "querystring"}
)

register = Library()
register.tags.update(
    {name: tag for name, tag in defaulttags.register.tags.items() if name not in FORBIDDEN_TAGS}
)
register.filters.update(defaultfilters.register.filters)

"""Tracking sections that other apps' pages include, so those pages need no tracking code."""

from __future__ import annotations

from django import template

from tracking.selectors import bounce_events

register = template.Library()


@register.inclusion_tag("tracking/_bounce_table.html")
def contact_bounces(contact):
    """The contact's bounces and complaints, each with its campaign, code and diagnostic."""
    return {"events": bounce_events(contact_id=contact.pk), "show_campaign": True}

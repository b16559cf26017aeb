"""Receivers of other packages' signals; each hands over to a service at once."""

from __future__ import annotations

from typing import Any


def anymail_tracking_received(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    """django-anymail's ``tracking`` signal: one normalised event of an ESP's webhook."""
    from tracking.esp import esp_event_record

    esp_event_record(event, esp_name)

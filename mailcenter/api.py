"""REST API plumbing shared by the apps: errors are always JSON with a message."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Give every DRF error a top-level ``detail`` message a client can show."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and "detail" not in data:
        response.data = {"detail": _first_message(data), "errors": data}
    elif isinstance(data, list):
        response.data = {"detail": " ".join(str(item) for item in data), "errors": data}
    return response


def _first_message(errors: Any) -> str:
    """The first field error, named, so a client can show one line that says what is wrong."""
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            if message:
                return message if field == "non_field_errors" else f"{field}: {message}"
    elif isinstance(errors, list):
        for value in errors:
            message = _first_message(value)
            if message:
                return message
    elif errors:
        return str(errors)
    return "Invalid input."


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse({"detail": "Server error."}, status=500)

"""Helpers shared by the contacts pages."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator

from contacts.privacy import csv_safe

__all__ = ["PAGE_SIZE", "ForgivingPaginationMixin", "add_errors", "csv_safe"]

PAGE_SIZE = 50


class ForgivingPaginationMixin:
    """A page number out of range or not a number shows the nearest page instead of a 404."""

    def paginate_queryset(self, queryset, page_size):
        paginator = Paginator(queryset, page_size)
        page = paginator.get_page(self.request.GET.get("page"))
        return paginator, page, page.object_list, page.has_other_pages()


def add_errors(form, exc: ValidationError) -> None:
    """Put a service's errors on the form's fields when it has them, else on the form."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)

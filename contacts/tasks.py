"""Celery entry points for contacts: ids in, the work is in services."""

from __future__ import annotations

from celery import shared_task


@shared_task
def contact_import_run_task(import_id: int) -> None:
    from contacts.services import contact_import_run

    contact_import_run(import_id)


@shared_task
def custom_field_index_sync_task(field_id: int) -> None:
    from contacts.services.indexes import custom_field_index_sync

    custom_field_index_sync(field_id)


@shared_task
def custom_field_indexes_repair_task() -> None:
    from contacts.services.indexes import custom_field_indexes_repair

    custom_field_indexes_repair()


@shared_task
def contact_imports_recover_task() -> None:
    from contacts.services.imports import contact_imports_recover

    contact_imports_recover()

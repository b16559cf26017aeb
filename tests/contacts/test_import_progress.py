"""The progress bar's rate and time left."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts import selectors
from contacts.models import ContactImport
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _import(**fields) -> ContactImport:
    return ContactImport(mailing_list=MailingListFactory(), file="imports/x.csv", **fields)


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "rate", "left", "shown"),
    [
        (5000, 20000, 10, 500, 30, "30 s"),
        (1000, 100000, 10, 100, 990, "16 min 30 s"),
        (1000, 10_000_000, 1, 1000, 9999, "2 h 46 min"),
        (0, 100, 5, 0, None, "—"),  # no rate yet
        (50, 0, 5, 10, None, "—"),  # the file is still being checked
        (100, 100, 5, 20, 0, "finishing…"),  # the COPY path's merge
    ],
)
def test_rate_and_time_left(done, total, elapsed, rate, left, shown):
    item = _import(
        status=ContactImport.Status.RUNNING,
        rows_done=done,
        rows_total=total,
        started_at=NOW - datetime.timedelta(seconds=elapsed),
    )

    speed = selectors.contact_import_speed(item, now=NOW)

    assert (speed["rate"], speed["seconds_left"], speed["time_left"]) == (rate, left, shown)
    assert speed["rate_display"].endswith(" rows/s")


def test_rate_display_groups_thousands():
    item = _import(rows_done=1_234_000, rows_total=2_000_000, started_at=NOW)
    speed = selectors.contact_import_speed(item, now=NOW + datetime.timedelta(seconds=10))
    assert speed["rate"] == 123_400
    assert speed["rate_display"] == "123,400 rows/s"


def test_progress_json_and_page_while_running(auth_client):
    item = _import(
        status=ContactImport.Status.RUNNING,
        rows_done=300,
        rows_total=900,
        started_at=timezone.now() - datetime.timedelta(seconds=60),
    )
    item.save()

    data = auth_client.get(reverse("contacts:import-progress", args=[item.pk])).json()
    page = auth_client.get(reverse("contacts:import-detail", args=[item.pk])).content.decode()

    assert data["running"] is True
    assert 4 <= data["rate"] <= 5
    assert data["seconds_left"] > 100
    assert "min" in data["time_left"]
    assert 'data-field="rate_display"' in page and 'data-field="time_left"' in page
    assert data["rate_display"] in page


def test_rate_and_time_left_only_while_running(auth_client):
    item = _import(status=ContactImport.Status.DONE, rows_done=5, rows_total=5, started_at=NOW)
    item.save()

    data = auth_client.get(reverse("contacts:import-progress", args=[item.pk])).json()
    page = auth_client.get(reverse("contacts:import-detail", args=[item.pk])).content.decode()

    assert "rate" not in data and "time_left" not in data
    assert 'data-field="time_left"' not in page


def test_the_importer_records_when_it_started(run_import):
    before = timezone.now()
    item = run_import("email\nann@example.com\n")
    assert item.started_at is not None and before <= item.started_at <= item.finished_at

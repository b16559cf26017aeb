"""``manage.py import_contacts``: the same importer as the web page, from the shell."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from contacts.models import Contact, ContactImport, CustomField, MailingList
from contacts.services.fields import custom_field_create
from tests.factories import ContactFactory, MailingListFactory

pytestmark = pytest.mark.django_db

CSV = (
    "Email Address,First Name,Town,Score\n"
    "ann@example.com,Ann,Riga,5\n"
    "bob@example.com,Bob,Oslo,x\n"
    "nope,No,Where,1\n"
    "gone@example.com,Gone,Rome,2\n"
)


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_contacts", *args, stdout=out)
    return out.getvalue()


def test_guesses_are_printed_and_used(csv_file):
    ContactFactory(email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)
    news = MailingListFactory(name="News")

    out = _run(str(csv_file), "--list", "News")

    assert "Email Address → Email address" in out
    assert "Town → a new text field “town”" in out
    assert "4 / 4 rows (100%)" in out
    assert "2 created, 0 updated, 1 skipped, 1 refused" in out
    assert "refused row 4 (nope)" in out
    assert "skipped row 5 (gone@example.com): unsubscribed, bounced or complained" in out
    item = ContactImport.objects.get()
    assert (item.status, item.mailing_list, item.mode) == ("done", news, "add_update")
    assert Contact.objects.get(email="ann@example.com").attributes == {
        "town": "Riga",
        "score": "5",
    }
    # The person who left is not brought back.
    assert not news.contacts.filter(email="gone@example.com").exists()


def test_map_overrides_guesses_with_fields_new_fields_and_ignore(csv_file):
    custom_field_create(key="city", label="City")
    MailingListFactory(name="News")

    out = _run(
        str(csv_file),
        "--list",
        "News",
        "--map",
        "town=city",
        "--map",
        "Score=new:score:number",
        "--map",
        "2=ignore",
    )

    assert "Town → the field “city”" in out
    assert "Score → a new number field “score”" in out
    assert "First Name → ignored" in out
    assert CustomField.objects.get(key="score").type == CustomField.Type.NUMBER
    ann = Contact.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.attributes) == ("", {"city": "Riga", "score": 5})
    # "x" is not a number: refused with the reason, like on the web page.
    assert "refused row 3 (bob@example.com): bad value for score" in out
    assert ContactImport.objects.get().mapping == ["email", "ignore", "field:city", "field:score"]


def test_mode_update_only_creates_no_contact(csv_file):
    news = MailingListFactory(name="News")
    ContactFactory(email="ann@example.com", first_name="Old")

    out = _run(str(csv_file), "--list", "News", "--mode", "update")

    assert "0 created, 1 updated" in out
    assert ContactImport.objects.get().mode == ContactImport.Mode.UPDATE_ONLY
    assert set(Contact.objects.values_list("email", flat=True)) == {"ann@example.com"}
    assert Contact.objects.get().first_name == "Ann"
    assert list(news.contacts.values_list("email", flat=True)) == ["ann@example.com"]


def test_create_list_makes_the_list(csv_file):
    out = _run(str(csv_file), "--list", "Fresh", "--create-list")

    assert "Created the list “Fresh”." in out
    assert MailingList.objects.get(name="Fresh").contacts.count() == 3


def test_dry_run_writes_nothing(csv_file):
    MailingListFactory(name="News")

    out = _run(str(csv_file), "--list", "News", "--dry-run")

    assert "Score → a new text field “score”" in out and "nothing was imported" in out
    assert not ContactImport.objects.exists()
    assert not CustomField.objects.exists()
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--list", "Nope"], "There is no list named “Nope”"),
        (["--list", "News", "--map", "Town"], "--map takes COLUMN=FIELD"),
        (["--list", "News", "--map", "Phone=email"], "The file has no column “Phone”"),
        (["--list", "News", "--map", "Town=colour"], "“colour” is not something a column"),
        (["--list", "News", "--map", "Town=new:Bad Key"], "cannot be the name of the new field"),
        (["--list", "News", "--map", "Town=new:town:choice"], "create it in Settings first"),
        (["--list", "News", "--map", "Email Address=ignore"], "Choose exactly one column"),
        (["--list", "News", "--map", "Town=first_name"], "are both mapped to First name"),
        (["--list", "News", "--mode", "resubscribe"], "invalid choice: 'resubscribe'"),
    ],
)
def test_bad_options_exit_with_a_clear_message(csv_file, args, message):
    MailingListFactory(name="News")

    with pytest.raises(CommandError, match=message):
        _run(str(csv_file), *args)

    assert not ContactImport.objects.exists()
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"PK\x03\x04rest-of-a-zip", "spreadsheet workbook"),
        (b"name,city\nIvan,Moscow\n", "Choose exactly one column that holds the email"),
    ],
)
def test_bad_files_exit_with_a_clear_message(tmp_path, content, message):
    MailingListFactory(name="News")
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        _run(str(path), "--list", "News")

    assert not ContactImport.objects.exists()


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        _run(str(tmp_path / "missing.csv"), "--list", "News")


def test_exit_status_is_non_zero_on_error(csv_file, tmp_path):
    """Run as a process: scripts see the failure in the exit status and on stderr."""
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "import_contacts",
            str(tmp_path / "missing.csv"),
            "--list",
            "X",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "No such file" in result.stderr


def _many(rows: int) -> str:
    return "email\n" + "".join(f"p{i}@example.com\n" for i in range(rows))


def test_progress_is_printed_as_batches_commit(settings, tmp_path, monkeypatch):
    from contacts.management.commands import import_contacts

    settings.MAILCENTER_IMPORT_BATCH_SIZE = 10
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 10**9
    monkeypatch.setattr(import_contacts, "PROGRESS_EVERY_SECONDS", 0)
    path = tmp_path / "many.csv"
    path.write_text(_many(25), encoding="utf-8")

    out = _run(str(path), "--list", "Many", "--create-list")

    lines = [line.strip() for line in out.splitlines() if "rows/s" in line]
    assert [line.split(" (")[0] for line in lines] == [
        "10 / 25 rows",
        "20 / 25 rows",
        "25 / 25 rows",
    ]
    assert "25 created" in out


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY path is PostgreSQL's")
def test_progress_of_the_copy_path(settings, tmp_path, monkeypatch):
    from contacts.management.commands import import_contacts
    from contacts.services import bulk_import

    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = 0
    monkeypatch.setattr(bulk_import, "PROGRESS_EVERY", 10)
    monkeypatch.setattr(import_contacts, "PROGRESS_EVERY_SECONDS", 0)
    path = tmp_path / "many.csv"
    path.write_text(_many(25), encoding="utf-8")

    out = _run(str(path), "--list", "Many", "--create-list")

    assert "10 / 25 rows" in out and "25 / 25 rows" in out
    assert "25 created" in out
    assert Contact.objects.count() == 25


@pytest.mark.parametrize("copy_min_rows", [10**9, 0], ids=["batch-path", "copy-path"])
def test_left_policy_update_updates_details_and_keeps_them_unsubscribed(
    csv_file, settings, copy_min_rows
):
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    gone = ContactFactory(email="gone@example.com", attributes={}, status=Contact.Status.COMPLAINED)
    news = MailingListFactory(name="News")

    out = _run(str(csv_file), "--list", "News", "--left-policy", "update")

    assert "contacts who unsubscribed before: update" in out
    assert "2 created, 1 updated, 0 skipped, 1 refused" in out
    assert (
        "updated row 5 (gone@example.com): unsubscribed, bounced or complained before: "
        "details updated, kept unsubscribed"
    ) in out
    item = ContactImport.objects.get()
    assert item.left_policy == ContactImport.LeftPolicy.UPDATE
    gone.refresh_from_db()
    assert (gone.first_name, gone.status) == ("Gone", Contact.Status.COMPLAINED)
    assert gone.attributes == {"town": "Rome", "score": "2"}
    assert not news.contacts.filter(email="gone@example.com").exists()


def test_left_policy_defaults_to_skip_and_refuses_other_values(csv_file):
    ContactFactory(email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)
    MailingListFactory(name="News")

    with pytest.raises(CommandError, match="invalid choice"):
        _run(str(csv_file), "--list", "News", "--left-policy", "resubscribe")
    out = _run(str(csv_file), "--list", "News")

    assert "contacts who unsubscribed before: skip" in out
    assert ContactImport.objects.get().left_policy == ContactImport.LeftPolicy.SKIP

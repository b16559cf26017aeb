from __future__ import annotations

import codecs
import io
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts import services
from contacts.models import Contact, ContactImport, Subscription
from contacts.services import imports
from tests.factories import ContactFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

BASIC = "email,first_name,last_name,city\nann@example.com,Ann,Lee,Riga\nbob@example.com,Bob,,\n"


def _counts(item: ContactImport) -> tuple[int, int, int, int]:
    return item.created, item.updated, item.skipped, item.refused


def _emails(mailing_list) -> set[str]:
    return set(
        Subscription.objects.filter(mailing_list=mailing_list).values_list(
            "contact__email", flat=True
        )
    )


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_import_reads_each_delimiter(run_import, mailing_list, delimiter):
    content = BASIC.replace(",", delimiter)

    item = run_import(content)

    assert item.status == ContactImport.Status.DONE, item.error
    assert _counts(item) == (2, 0, 0, 0)
    assert item.rows_total == item.rows_done == 2
    assert item.finished_at is not None
    ann = Contact.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.last_name, ann.attributes) == ("Ann", "Lee", {"city": "Riga"})
    assert _emails(mailing_list) == {"ann@example.com", "bob@example.com"}


def test_import_reads_utf8_with_bom(run_import):
    item = run_import(codecs.BOM_UTF8 + "Email,Имя\nivan@example.ru,Иван\n".encode())

    assert item.status == ContactImport.Status.DONE, item.error
    assert Contact.objects.get(email="ivan@example.ru").first_name == "Иван"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_import_reads_utf16_with_bom(run_import, codec):
    text = "Email Address\tFirst Name\tLast Name\nzoe@example.com\tZoë\tMüller\n"
    bom = {"utf-16": b"", "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
    item = run_import(bom[codec] + text.encode(codec))

    assert item.status == ContactImport.Status.DONE, item.error
    zoe = Contact.objects.get(email="zoe@example.com")
    assert (zoe.first_name, zoe.last_name) == ("Zoë", "Müller")


@pytest.mark.parametrize(
    ("codec", "text"),
    [
        ("cp1251", "email;name\nivan@example.ru;Иван Петров\nolga@example.ru;Ольга Ёлкина\n"),
        ("latin-1", "email,name\nivan@example.ru,Zoë Müller\nolga@example.ru,Hélène Ça\n"),
        ("cp1252", "email\tname\nivan@example.ru\t€uro “Quote”\nolga@example.ru\tÅse\n"),
    ],
)
def test_legacy_8_bit_files_are_read_in_their_code_page(run_import, codec, text):
    item = run_import(text.encode(codec))

    assert item.status == ContactImport.Status.DONE, item.error
    names = dict(Contact.objects.values_list("email", "first_name"))
    rows = text.splitlines()[1:]
    delimiter = ";" if ";" in text else ("," if "," in rows[0] else "\t")
    assert names == dict(row.split(delimiter) for row in rows)


def test_a_file_no_8_bit_code_page_reads_fails_clearly(run_import):
    # 0x98 is unused in Windows-1251, and the Cyrillic runs rule out Latin-1.
    content = "email;name\nivan@example.ru;Иван\n".encode("cp1251") + b"\x98\xc8\xc2\n"

    item = run_import(content)

    assert item.status == ContactImport.Status.FAILED
    assert "CSV UTF-8" in item.error
    assert Contact.objects.count() == 0


def test_invalid_utf8_late_in_the_file_is_caught_before_writing(run_import, settings):
    settings.MAILCENTER_IMPORT_BATCH_SIZE = 2
    # UTF-8 text first ("Zoë"), then a byte that is not: a damaged UTF-8 file, not a
    # legacy 8-bit one, so no code page is guessed.
    rows = "".join(f"p{n}@example.com,Zoë\n" for n in range(50))
    content = ("email,name\n" + rows).encode() + "bad@example.com,Łukasz\n".encode("cp1250")

    item = run_import(content)

    assert item.status == ContactImport.Status.FAILED
    assert "line 52" in item.error
    assert Contact.objects.count() == 0


def test_a_spreadsheet_workbook_fails_clearly(run_import):
    item = run_import(b"PK\x03\x04" + b"\x00" * 100, name="contacts.xlsx")

    assert item.status == ContactImport.Status.FAILED
    assert "workbook" in item.error


def test_semicolon_file_without_email_column_lists_columns_and_delimiter(run_import):
    item = run_import("Name;Phone;City\nAnn;+351 1;Porto\nBob;+351 2;Faro\n")

    assert item.status == ContactImport.Status.FAILED
    assert "No email column" in item.error
    assert "“Name”, “Phone”, “City”" in item.error
    assert "semicolon" in item.error
    assert Contact.objects.count() == 0


def test_wrong_delimiter_shows_up_as_one_long_column(run_import):
    # Commas inside every value make the sniffer see comma-separated data.
    item = run_import("mail address;a,b\nann@example.com;1,2\n")

    assert item.status == ContactImport.Status.FAILED
    assert "“mail address;a”" in item.error


def test_empty_file_fails(run_import):
    item = run_import(b"")

    assert item.status == ContactImport.Status.FAILED
    assert "empty" in item.error


def test_header_only_is_done_with_nothing(run_import):
    item = run_import("email,name\n")

    assert item.status == ContactImport.Status.DONE
    assert _counts(item) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "header", ["Email Address", "E-mail", "EMAIL", " email ", "e_mail", "Email address"]
)
def test_email_column_is_found_by_common_names(run_import, header):
    item = run_import(f"{header},First Name,Last Name\nann@example.com,Ann,Lee\n")

    assert item.status == ContactImport.Status.DONE, item.error
    ann = Contact.objects.get()
    assert (ann.email, ann.first_name, ann.last_name) == ("ann@example.com", "Ann", "Lee")


def test_mailchimp_export_columns(run_import):
    content = (
        '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME","TAGS"\n'
        '"ann@example.com","Ann","Lee",2,"2024-01-02 10:00:00","""vip"",""eu"""\n'
    )
    item = run_import(content)

    assert item.status == ContactImport.Status.DONE, item.error
    ann = Contact.objects.get()
    assert ann.attributes == {
        "MEMBER_RATING": "2",
        "OPTIN_TIME": "2024-01-02 10:00:00",
        "TAGS": '"vip","eu"',
    }


def test_single_name_column_fills_the_first_name(run_import):
    run_import("Name,email\nAnn Lee,ann@example.com\n")

    ann = Contact.objects.get()
    assert (ann.first_name, ann.last_name, ann.attributes) == ("Ann Lee", "", {})


def test_quoted_fields_with_embedded_newlines_and_delimiters(run_import):
    content = (
        "email,first_name,note\r\n"
        'ann@example.com,"Lee, Ann","line one\r\nline two; still, the note"\r\n'
        'bob@example.com,Bob,"said ""hi"""\r\n'
    )
    item = run_import(content)

    assert item.status == ContactImport.Status.DONE, item.error
    assert _counts(item) == (2, 0, 0, 0)
    ann = Contact.objects.get(email="ann@example.com")
    assert ann.first_name == "Lee, Ann"
    assert ann.attributes == {"note": "line one\r\nline two; still, the note"}
    assert Contact.objects.get(email="bob@example.com").attributes == {"note": 'said "hi"'}


def test_duplicates_in_the_file_are_merged_later_rows_winning(run_import, mailing_list):
    content = (
        "email,first_name,last_name,city,plan\n"
        "ann@example.com,Ann,,Riga,\n"
        "ANN@EXAMPLE.COM,Anna,Lee,,pro\n"
        "ann@Example.com,,,Tartu,\n"
    )
    item = run_import(content)

    assert item.status == ContactImport.Status.DONE
    # One contact created; the two repeats are merged into it and counted as skipped.
    assert _counts(item) == (1, 0, 2, 0)
    ann = Contact.objects.get()
    assert ann.email == "ann@example.com"
    assert (ann.first_name, ann.last_name) == ("Anna", "Lee")
    assert ann.attributes == {"city": "Tartu", "plan": "pro"}
    assert Subscription.objects.filter(mailing_list=mailing_list).count() == 1


def test_invalid_addresses_are_refused_and_listed(run_import):
    content = (
        "email,name\n"
        "ann@example.com,Ann\n"
        "not-an-email,Bob\n"
        ",No Address\n"
        "\n"
        "carl@example,Carl\n"
        "dora@example.com,Dora\n"
    )
    item = run_import(content)

    assert item.status == ContactImport.Status.DONE
    assert _counts(item) == (2, 0, 0, 3)
    assert [r["row"] for r in item.refused_rows] == [3, 4, 6]
    assert item.refused_rows[0]["email"] == "not-an-email"
    assert "not a valid email address" in item.refused_rows[0]["reason"]
    assert item.refused_rows[1] == {"row": 4, "email": "", "reason": "No email address."}
    assert item.rows_done == item.rows_total == 5


def test_refused_rows_are_capped_but_counted(run_import, settings):
    settings.MAILCENTER_IMPORT_REFUSED_ROWS_KEPT = 3
    item = run_import("email\n" + "".join(f"bad{n}\n" for n in range(10)))

    assert item.refused == 10
    assert len(item.refused_rows) == 3


def test_reimporting_the_same_file_changes_nothing(run_import):
    content = (
        "email,first_name,city\n"
        "ann@example.com,Ann,Riga\n"
        "ann@example.com,Anna,\n"
        "bob@example.com,,Oslo\n"
        "bad,,\n"
    )
    first = run_import(content)
    before = list(Contact.objects.order_by("id").values())

    second = run_import(content)

    assert _counts(first) == (2, 0, 1, 1)
    assert _counts(second) == (0, 0, 3, 1)
    assert list(Contact.objects.order_by("id").values()) == before


def test_existing_contacts_are_updated_only_where_the_file_has_values(run_import, mailing_list):
    ann = ContactFactory(
        email="Ann@example.com", first_name="Ann", last_name="Lee", attributes={"city": "Riga"}
    )
    SubscriptionFactory(contact=ann, mailing_list=mailing_list)
    bob = ContactFactory(email="bob@example.com", first_name="Bob", attributes={})
    carl = ContactFactory(email="carl@example.com", first_name="Carl", attributes={})
    SubscriptionFactory(contact=carl, mailing_list=mailing_list)

    item = run_import(
        "email,first_name,last_name,plan\n"
        "ann@EXAMPLE.com,,,pro\n"  # new attribute: updated, names kept
        "bob@example.com,Bob,,\n"  # same data but joins the list: updated
        "carl@example.com,Carl,,\n"  # nothing new: skipped
    )

    assert _counts(item) == (0, 2, 1, 0)
    ann.refresh_from_db()
    assert ann.email == "Ann@example.com"
    assert (ann.first_name, ann.last_name) == ("Ann", "Lee")
    assert ann.attributes == {"city": "Riga", "plan": "pro"}
    assert _emails(mailing_list) == {"Ann@example.com", "bob@example.com", "carl@example.com"}
    assert Contact.objects.count() == 3
    bob.refresh_from_db()
    assert bob.last_name == "Doe"


@pytest.mark.parametrize(
    "status",
    [Contact.Status.UNSUBSCRIBED, Contact.Status.BOUNCED, Contact.Status.COMPLAINED],
)
def test_suppressed_contacts_stay_suppressed_and_out_of_the_list(run_import, mailing_list, status):
    gone = ContactFactory(email="gone@example.com", first_name="Old", status=status)

    item = run_import("email,first_name\ngone@example.com,New\n")

    assert _counts(item) == (0, 0, 1, 0)
    gone.refresh_from_db()
    assert gone.status == status
    assert gone.first_name == "Old"
    assert not Subscription.objects.filter(contact=gone).exists()


def test_an_ended_subscription_is_not_switched_back_on(run_import, mailing_list):
    ann = ContactFactory(email="ann@example.com", first_name="Ann")
    SubscriptionFactory(
        contact=ann, mailing_list=mailing_list, status=Subscription.Status.UNSUBSCRIBED
    )

    item = run_import("email,first_name\nann@example.com,Ann\n")

    assert _counts(item) == (0, 0, 1, 0)
    assert Subscription.objects.get(contact=ann).status == Subscription.Status.UNSUBSCRIBED


def test_import_into_a_second_list_adds_existing_contacts(run_import, mailing_list):
    run_import(BASIC)
    other = MailingListFactory(name="Other")

    item = run_import(BASIC, into=other)

    assert _counts(item) == (0, 2, 0, 0)
    assert Contact.objects.count() == 2
    assert _emails(other) == {"ann@example.com", "bob@example.com"}


def test_batches_update_progress_and_the_counts_add_up(run_import, settings):
    settings.MAILCENTER_IMPORT_BATCH_SIZE = 7
    seen = []
    real_batch = imports._import_batch

    def spy(mailing_list, rows, tally, *args):
        real_batch(mailing_list, rows, tally, *args)
        seen.append(tally.rows_done)

    rows = "".join(f"p{n}@example.com,P{n}\n" for n in range(30))
    with mock.patch.object(imports, "_import_batch", spy):
        item = run_import("email,name\n" + rows + "p3@example.com,Again\nbad\n")

    assert seen == [7, 14, 21, 28, 32]
    assert item.rows_total == item.rows_done == 32
    assert _counts(item) == (30, 1, 0, 1)
    assert Contact.objects.get(email="p3@example.com").first_name == "Again"


def test_batch_queries_do_not_grow_with_rows(run_import, settings, django_assert_max_num_queries):
    settings.MAILCENTER_IMPORT_BATCH_SIZE = 1000
    rows = "".join(f"p{n}@example.com,P{n},v{n}\n" for n in range(500))
    with django_assert_max_num_queries(25):
        item = run_import("email,name,x\n" + rows)

    assert item.created == 500


def test_unexpected_error_marks_the_import_failed(run_import, caplog):
    with mock.patch.object(imports, "_import_batch", side_effect=RuntimeError("disk on fire")):
        item = run_import(BASIC)

    assert item.status == ContactImport.Status.FAILED
    assert "disk on fire" in item.error
    assert item.finished_at is not None
    assert "Contact import" in caplog.text


def test_missing_file_marks_the_import_failed(mailing_list):
    item = ContactImport.objects.create(mailing_list=mailing_list, file="imports/nowhere.csv")

    services.contact_import_run(item.pk)

    item.refresh_from_db()
    assert item.status == ContactImport.Status.FAILED
    assert "missing" in item.error


def test_run_does_nothing_unless_the_import_is_queued(run_import):
    item = run_import(BASIC)
    Contact.objects.all().delete()

    services.contact_import_run(item.pk)

    assert Contact.objects.count() == 0


def test_contact_import_create_stores_the_file_and_runs_on_commit(
    mailing_list, user, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("people.csv", BASIC.encode(), content_type="text/csv")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        item = services.contact_import_create(mailing_list, upload, user)

    assert len(callbacks) == 1
    item.refresh_from_db()
    assert item.original_name == "people.csv"
    assert item.created_by == user
    assert item.file.name.startswith("imports/")
    assert item.status == ContactImport.Status.DONE
    assert item.created == 2


def test_contact_import_create_does_not_run_before_commit(mailing_list, user):
    upload = SimpleUploadedFile("people.csv", BASIC.encode())
    item = services.contact_import_create(mailing_list, upload, user)

    item.refresh_from_db()
    assert item.status == ContactImport.Status.QUEUED


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"PK\x03\x04rest", "workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "workbook"),
    ],
)
def test_contact_import_create_refuses_bad_uploads(mailing_list, content, message):
    upload = SimpleUploadedFile("x.csv", content)
    with pytest.raises(ValidationError, match=message):
        services.contact_import_create(mailing_list, upload)
    assert not ContactImport.objects.exists()


def test_contact_import_create_refuses_files_over_the_limit(mailing_list, settings):
    settings.MAILCENTER_IMPORT_MAX_BYTES = 10
    upload = SimpleUploadedFile("x.csv", BASIC.encode())
    with pytest.raises(ValidationError, match="largest file accepted is 10"):
        services.contact_import_create(mailing_list, upload)


class _CountingRaw(io.RawIOBase):
    def __init__(self, fh, sizes):
        self.fh, self.sizes = fh, sizes

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.fh.read(len(buffer))
        self.sizes.append(len(data))
        buffer[: len(data)] = data
        return len(data)

    def close(self):
        self.fh.close()
        super().close()


def test_stored_file_is_streamed_never_read_whole(mailing_list, settings):
    settings.MAILCENTER_IMPORT_BATCH_SIZE = 5000
    rows = "".join(f"person{n}@example.com,Person {n},{'x' * 40}\n" for n in range(15000))
    item = ContactImport(mailing_list=mailing_list)
    item.file.save("big.csv", ContentFile(("email,name,note\n" + rows).encode()))
    assert item.file.size > 1024 * 1024
    sizes: list[int] = []
    storage = item.file.storage
    real_open = storage.open

    def counting_open(name, mode="rb"):
        return io.BufferedReader(_CountingRaw(real_open(name, mode), sizes))

    with mock.patch.object(storage, "open", counting_open):
        services.contact_import_run(item.pk)

    item.refresh_from_db()
    assert item.created == 15000
    assert max(sizes) <= 256 * 1024


def test_long_and_non_ascii_file_names_are_stored(mailing_list, django_capture_on_commit_callbacks):
    name = "Контакты " + "x" * 240 + ".csv"
    upload = SimpleUploadedFile(name, BASIC.encode())

    with django_capture_on_commit_callbacks(execute=True):
        item = services.contact_import_create(mailing_list, upload)

    item.refresh_from_db()
    assert item.original_name == name[:255]
    assert len(item.file.name) <= 100
    assert item.status == ContactImport.Status.DONE

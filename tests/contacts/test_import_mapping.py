"""The mapping step of the importer: guesses, validation, the page and the API's mapping."""

from __future__ import annotations

import codecs
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ContactImport, CustomField
from contacts.services import imports
from contacts.services.fields import custom_field_create
from tests.contacts.helpers import confirm_mapping
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db

IMPORTS = "/api/v1/imports/"


def _upload(content: bytes | str, name: str = "people.csv") -> SimpleUploadedFile:
    if isinstance(content, str):
        content = content.encode()
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # Mailchimp
        (
            ["Email Address", "First Name", "Last Name", "MEMBER_RATING"],
            ["email", "first_name", "last_name", "new"],
        ),
        # Unisender
        (["email", "Name"], ["email", "first_name"]),
        # listmonk
        (["email", "name", "attributes"], ["email", "first_name", "new"]),
        # Mautic
        (["email", "firstname", "lastname", "city"], ["email", "first_name", "last_name", "new"]),
        # A full name beside a first name stays a field; a blank header is ignored.
        (["E-mail", "First", "Name", ""], ["email", "first_name", "new", "ignore"]),
    ],
)
def test_guesses_follow_the_export_formats(header, expected):
    assert imports.contact_import_guess_mapping(header) == expected


def test_guess_picks_an_existing_field_by_key_or_label():
    custom_field_create(key="signup_date", label="Signed up", type="date")

    assert imports.contact_import_guess_mapping(["email", "Signup Date"]) == [
        "email",
        "field:signup_date",
    ]
    assert imports.contact_import_guess_mapping(["email", "signed up"]) == [
        "email",
        "field:signup_date",
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (["first_name", "last_name", "ignore"], "exactly one column"),
        (["email", "email", "ignore"], "exactly one column"),
        (["email", "first_name", "first_name"], "are both mapped to First name"),
        (["email", "first_name"], "one target per column"),
        (["email", "first_name", "phone"], "unknown target"),
        (["email", "first_name", "field:nope"], "does not exist"),
        ("email", "one target per column"),
    ],
)
def test_bad_mappings_are_refused_with_a_clear_message(mapping, message):
    with pytest.raises(ValidationError) as caught:
        imports.contact_import_mapping_clean(["Mail", "Given", "Other"], mapping)

    assert message in caught.value.messages[0]


def test_two_new_fields_with_the_same_key_are_refused():
    with pytest.raises(ValidationError, match="are both mapped"):
        imports.contact_import_mapping_clean(["email", "City", "city"], ["email", "new", "new"])


def test_a_new_field_clashing_with_an_existing_key_is_refused():
    custom_field_create(key="city", label="Town")

    with pytest.raises(ValidationError, match="exists already"):
        imports.contact_import_mapping_clean(["email", "City"], ["email", "new"])


def test_mapping_page_shows_samples_and_guesses(auth_client):
    news = MailingListFactory(name="News")
    content = "Mail;Given;Town;Notes\n" + "".join(
        f"p{i}@example.com;Name{i};Riga;n{i}\n" for i in range(8)
    )
    response = auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "file": _upload(content)},
    )
    item = ContactImport.objects.get()

    assert item.status == ContactImport.Status.MAPPING
    assert response["Location"] == reverse("contacts:import-mapping", args=[item.pk])
    # The detail page sends a waiting import to its mapping page; nothing was queued.
    detail = auth_client.get(reverse("contacts:import-detail", args=[item.pk]))
    assert detail["Location"] == reverse("contacts:import-mapping", args=[item.pk])
    page = auth_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "p0@example.com" in html and "p4@example.com" in html
    assert "p5@example.com" not in html  # five samples at most
    form = page.context["form"]
    assert [form[f"col_{i}"].initial for i in range(4)] == ["email", "new", "new", "new"]
    assert Contact.objects.count() == 0


def test_confirming_a_mapping_imports_with_it(auth_client, django_capture_on_commit_callbacks):
    custom_field_create(key="age", label="Age", type="number")
    news = MailingListFactory(name="News")
    content = (
        "Mail,Given,Years,Town,Junk\nann@example.com,Ann,41,Riga,x\nbob@example.com,Bob,9,,y\n"
    )
    auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "file": _upload(content)},
    )
    item = ContactImport.objects.get()
    url = reverse("contacts:import-mapping", args=[item.pk])

    # Two email columns: refused, nothing queued.
    bad = auth_client.post(
        url,
        {
            "col_0": "email",
            "col_1": "email",
            "col_2": "ignore",
            "col_3": "ignore",
            "col_4": "ignore",
        },
    )
    assert bad.status_code == 400
    assert "exactly one column" in bad.content.decode()
    item.refresh_from_db()
    assert item.status == ContactImport.Status.MAPPING

    with django_capture_on_commit_callbacks(execute=True):
        ok = auth_client.post(
            url,
            {
                "col_0": "email",
                "col_1": "first_name",
                "col_2": "field:age",
                "col_3": "new",
                "col_4": "ignore",
            },
        )

    assert ok["Location"] == reverse("contacts:import-detail", args=[item.pk])
    item.refresh_from_db()
    assert item.status == ContactImport.Status.DONE, item.error
    assert item.mapping == ["email", "first_name", "field:age", "field:town", "ignore"]
    assert (item.created, item.refused) == (2, 0)
    assert CustomField.objects.get(key="town").type == CustomField.Type.TEXT
    ann = Contact.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.attributes) == ("Ann", {"age": 41, "town": "Riga"})
    assert Contact.objects.get(email="bob@example.com").attributes == {"age": 9}
    # Once started, the mapping page only points to the import.
    assert auth_client.get(url)["Location"] == reverse("contacts:import-detail", args=[item.pk])


def test_mapping_handles_legacy_encodings(auth_client, django_capture_on_commit_callbacks):
    news = MailingListFactory(name="News")
    content = "Почта;Имя;Город\nivan@example.ru;Иван;Москва\n".encode("cp1251")
    auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "file": _upload(content)},
    )
    item = ContactImport.objects.get()
    page = auth_client.get(reverse("contacts:import-mapping", args=[item.pk]))
    assert "Москва" in page.content.decode()
    form = page.context["form"]
    assert [form[f"col_{i}"].initial for i in range(3)] == ["email", "first_name", "new"]

    with django_capture_on_commit_callbacks(execute=True):
        auth_client.post(
            reverse("contacts:import-mapping", args=[item.pk]),
            {"col_0": "email", "col_1": "first_name", "col_2": "new"},
        )

    item.refresh_from_db()
    assert item.status == ContactImport.Status.DONE, item.error
    ivan = Contact.objects.get(email="ivan@example.ru")
    assert (ivan.first_name, ivan.attributes) == ("Иван", {"column_3": "Москва"})


def test_mapping_page_of_an_unreadable_file_says_so(auth_client):
    news = MailingListFactory(name="News")
    auth_client.post(
        reverse("contacts:import"),
        {"mailing_list": news.pk, "file": _upload(codecs.BOM_UTF32_LE + b"x")},
    )
    item = ContactImport.objects.get()

    page = auth_client.get(reverse("contacts:import-mapping", args=[item.pk]))

    assert page.status_code == 400
    assert "not UTF-8" in page.content.decode()


def test_api_import_with_a_mapping(api_client, django_capture_on_commit_callbacks):
    news = MailingListFactory()
    content = "a,b,c\nann@example.com,Ann,Lee\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            IMPORTS,
            {
                "list": news.pk,
                "file": _upload(content),
                "mapping": json.dumps(["email", "ignore", "last_name"]),
            },
            format="multipart",
        )

    assert response.status_code == 201, response.json()
    item = ContactImport.objects.get()
    assert item.status == ContactImport.Status.DONE, item.error
    ann = Contact.objects.get(email="ann@example.com")
    assert (ann.first_name, ann.last_name) == ("", "Lee")
    assert api_client.get(f"{IMPORTS}{item.pk}/").json()["mapping"] == [
        "email",
        "ignore",
        "last_name",
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("not json", "JSON list"),
        ('"email"', "JSON list"),
        ('{"a": "email", "b": "email"}', "exactly one column"),
        ('["email", "email", "ignore"]', "exactly one column"),
    ],
)
def test_api_refuses_a_bad_mapping(api_client, mapping, message):
    news = MailingListFactory()
    response = api_client.post(
        IMPORTS,
        {"list": news.pk, "file": _upload("a,b,c\nann@example.com,Ann,Lee\n"), "mapping": mapping},
        format="multipart",
    )

    assert response.status_code == 400
    assert message in json.dumps(response.json(), ensure_ascii=False)
    assert ContactImport.objects.count() == 0


@pytest.mark.parametrize("copy_min_rows", [0, 10**9], ids=["copy-path", "batch-path"])
def test_mapping_with_typed_fields_on_both_paths(
    api_client, settings, django_capture_on_commit_callbacks, copy_min_rows
):
    """On PostgreSQL, 0 sends the file through COPY; elsewhere both run the batch path."""
    settings.MAILCENTER_IMPORT_COPY_MIN_ROWS = copy_min_rows
    custom_field_create(key="age", label="Age", type="number")
    news = MailingListFactory()
    content = "x,y,z\nann@example.com,41,Riga\nbob@example.com,old,Oslo\nann@example.com,,Rome\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            IMPORTS,
            {
                "list": news.pk,
                "file": _upload(content),
                "mapping": json.dumps(["email", "field:age", "new"]),
            },
            format="multipart",
        )

    assert response.status_code == 201, response.json()
    item = ContactImport.objects.get()
    assert item.status == ContactImport.Status.DONE, item.error
    assert (item.created, item.updated, item.skipped, item.refused) == (1, 0, 1, 1)
    assert item.refused_rows[0]["reason"] == "bad value for age"
    ann = Contact.objects.get(email="ann@example.com")
    assert ann.attributes == {"age": 41, "z": "Rome"}


@pytest.mark.parametrize(
    ("target", "key", "field_type"),
    [
        ("new", "city", "text"),
        ("new:town", "town", "text"),
        ("new:town:number", "town", "number"),
        ("new::date", "city", "date"),
    ],
)
def test_new_field_targets_carry_a_name_and_a_type(target, key, field_type):
    targets, new_fields = imports.contact_import_mapping_clean(["email", "City"], ["email", target])

    assert targets == ["email", f"field:{key}"]
    assert new_fields == [imports.NewField(key, "City", field_type)]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("new:Town Name:text", "cannot be the name of the new field"),
        ("new:9lives", "cannot be the name of the new field"),
        ("new:a:b:text", "cannot be the name of the new field"),
        ("new:town:colour", "cannot have the type “colour”"),
        ("new:town:choice", "create it in Settings first"),
    ],
)
def test_bad_new_fields_are_refused_in_plain_words(target, message):
    with pytest.raises(ValidationError) as caught:
        imports.contact_import_mapping_clean(["email", "City"], ["email", target])

    assert message in caught.value.messages[0]


def _upload_to_mapping(auth_client, content: str):
    news = MailingListFactory(name="News")
    response = auth_client.post(
        reverse("contacts:import"), {"mailing_list": news.pk, "file": _upload(content)}
    )
    return ContactImport.objects.get(), response


def test_mapping_page_creates_a_typed_field_and_takes_the_mode(
    auth_client, django_capture_on_commit_callbacks
):
    item, uploaded = _upload_to_mapping(
        auth_client, "Mail,First,Years\nann@example.com,Ann,41\nbob@example.com,Bob,old\n"
    )
    page = auth_client.get(uploaded["Location"]).content.decode()
    assert 'name="col_2_key"' in page and 'value="years"' in page
    assert "never subscribed again by an import" in page
    assert "Upload and import" not in page

    with django_capture_on_commit_callbacks(execute=True):
        done = confirm_mapping(
            auth_client,
            uploaded,
            {2: "new"},
            col_2_key="age_years",
            col_2_type="number",
            mode="add",
        )

    assert done["Location"] == reverse("contacts:import-detail", args=[item.pk])
    item.refresh_from_db()
    assert item.status == ContactImport.Status.DONE, item.error
    assert item.mode == ContactImport.Mode.ADD_ONLY
    assert item.mapping == ["email", "first_name", "field:age_years"]
    field = CustomField.objects.get(key="age_years")
    assert (field.label, field.type) == ("Years", CustomField.Type.NUMBER)
    assert Contact.objects.get(email="ann@example.com").attributes == {"age_years": 41}
    # "old" is no number: the row is refused with the reason, not stored as text.
    assert (item.created, item.refused) == (1, 1)
    assert item.refused_rows[0]["reason"] == "bad value for age_years"


@pytest.mark.parametrize(
    ("overrides", "extra", "message"),
    [
        ({0: "ignore"}, {}, "Choose exactly one column that holds the email addresses"),
        ({2: "first_name"}, {}, "are both mapped to First name"),
        ({2: "new"}, {"col_2_key": "Age in years"}, "cannot be the name of the new field"),
        ({2: "new"}, {"col_2_key": "a" * 51}, "cannot be the name of the new field"),
        ({2: "new"}, {"col_2_type": "choice"}, "create it in Settings first"),
        ({}, {"mode": "resubscribe"}, "Select a valid choice"),
    ],
)
def test_mapping_page_explains_a_bad_mapping(auth_client, overrides, extra, message):
    item, uploaded = _upload_to_mapping(auth_client, "Mail,First,Years\nann@example.com,Ann,41\n")

    page = confirm_mapping(auth_client, uploaded, overrides, **extra)

    assert page.status_code == 400
    assert message in page.content.decode()
    item.refresh_from_db()
    assert item.status == ContactImport.Status.MAPPING
    assert not CustomField.objects.exists()
    assert not Contact.objects.exists()


def test_new_field_inputs_of_a_column_not_made_a_field_are_ignored(
    auth_client, django_capture_on_commit_callbacks
):
    item, uploaded = _upload_to_mapping(auth_client, "Mail,First,Years\nann@example.com,Ann,41\n")

    with django_capture_on_commit_callbacks(execute=True):
        done = confirm_mapping(
            auth_client, uploaded, {2: "ignore"}, col_2_key="Not A Key" * 10, col_2_type="x"
        )

    assert done.status_code == 302
    item.refresh_from_db()
    assert item.mapping == ["email", "first_name", "ignore"]
    assert not CustomField.objects.exists()

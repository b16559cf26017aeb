"""A CSV through the mapping page into a nested segment, in a real browser.

Headless Debian Chromium through Playwright against the live server, like tests/e2e: the
columns are mapped by hand (a guess changed, a column made a new number field), the
import's summary is read, and a nested segment on the new field is built; its live count
must equal a count made here with the ORM, not through the segment compiler.
"""

from __future__ import annotations

import re

import pytest
from django.db.models import Q
from django.urls import reverse

from tests.browser import BROWSER_MARKS

PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 20_000
PHONE = {"width": 390, "height": 844}

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
expect = sync_api.expect

CSV = (
    "E-mail,Given name,Family,Points,Notes\n"
    "ana@example.com,Ana,Silva,41,met at the fair\n"
    "ben@example.com,Ben,Smith,5,\n"
    "bo@example.org,Bo,Stone,50,\n"
    "cy@example.com,Cy,Young,33,vip\n"
    "dan@example.com,Dan,Brown,2,\n"
    "eve@example.com,Eve,Black,lots,\n"
    "not-an-address,No,Body,1,\n"
)


def _log_in(page, url: str) -> None:
    page.goto(url + reverse("contacts:import"))
    page.get_by_label("Username or email").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Import contacts")).to_be_visible()


def _upload(page, csv_path, *, new_list: str = "", existing: str = "") -> None:
    if new_list:
        page.get_by_label("or create a new list named").fill(new_list)
    else:
        page.get_by_label("Import into the list").select_option(label=existing)
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and choose columns").click()
    expect(page.get_by_role("heading", name=re.compile("Columns of"))).to_be_visible()


def test_mapped_import_feeds_a_nested_segment_counted_like_the_database(
    live_server, browser, django_user_model, tmp_path
):
    from contacts.models import Contact, ContactImport, CustomField, Segment

    django_user_model.objects.create_user(username="maria", password=PASSWORD)
    url = live_server.url
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    _log_in(page, url)
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(CSV, encoding="utf-8")

    # --- the mapping page: guesses shown, two changed, one new number field ----------------
    _upload(page, csv_path, new_list="People")
    email, first, family = (
        page.get_by_label(n, exact=True) for n in ("E-mail", "Given name", "Family")
    )
    points, notes = page.get_by_label("Points", exact=True), page.get_by_label("Notes", exact=True)
    expect(email).to_have_value("email")
    expect(first).to_have_value("first_name")
    expect(family).to_have_value("new")  # "Family" alone is not a known last-name header
    expect(points).to_have_value("new")
    expect(page.get_by_text("met at the fair")).to_be_visible()  # sample values
    family.select_option("last_name")
    notes.select_option("ignore")
    # The new-field inputs follow the select: hidden for a name column, shown for a new one.
    expect(page.get_by_label("New field name for “Family”")).to_be_hidden()
    expect(page.get_by_label("New field name for “Notes”")).to_be_hidden()
    expect(page.get_by_label("New field name for “Points”")).to_have_value("points")
    page.get_by_label("New field type for “Points”").select_option("number")

    # A mistake is explained on the page and nothing starts.
    first.select_option("last_name")
    page.get_by_role("button", name="Start the import").click()
    expect(page.get_by_role("alert")).to_contain_text("are both mapped to Last name")
    assert ContactImport.objects.get().status == ContactImport.Status.MAPPING
    assert not Contact.objects.exists()
    # The page came back with the choices made; put the first name right and start.
    expect(page.get_by_label("Family", exact=True)).to_have_value("last_name")
    page.get_by_label("Given name", exact=True).select_option("first_name")
    page.get_by_role("button", name="Start the import").click()

    # --- the summary -----------------------------------------------------------------------
    expect(page.get_by_role("heading", name=re.compile("Import of"))).to_be_visible()
    expect(page.locator(".badge")).to_have_text("Done")
    expect(page.locator("[data-field='created']")).to_have_text("5")
    expect(page.locator("[data-field='refused']")).to_have_text("2")
    expect(page.get_by_role("row", name=re.compile("bad value for points"))).to_be_visible()
    download = page.get_by_role("link", name="Download as CSV").first.get_attribute("href")
    refused_csv = page.request.get(url + download).text()
    assert "not-an-address" in refused_csv and "bad value for points" in refused_csv
    assert CustomField.objects.get(key="points").type == CustomField.Type.NUMBER
    ana = Contact.objects.get(email="ana@example.com")
    assert (ana.first_name, ana.last_name, ana.attributes) == ("Ana", "Silva", {"points": 41})

    # --- domain is example.com AND (points > 30 OR last name starts with "s") -------------
    page.goto(url + reverse("contacts:segment-create"))
    page.get_by_label("Name").fill("Keen at example.com")
    builder = page.locator("#segment-builder")
    builder.locator("[data-add=condition]").first.click()
    domain = builder.locator(".segment-condition").nth(0)
    domain.get_by_label("field").select_option("domain")
    domain.get_by_label("operator").select_option("equals")
    domain.get_by_label("value").fill("example.com")
    builder.locator("[data-add=group]").first.click()
    inner = builder.locator(".segment-group .segment-group")
    expect(inner.get_by_label("combine")).to_have_value("or")
    keen = inner.locator(".segment-condition").nth(0)
    keen.get_by_label("field").select_option("custom.points")
    keen.get_by_label("operator").select_option("gt")
    keen.get_by_label("value").fill("30")
    inner.locator("[data-add=condition]").click()
    surname = inner.locator(".segment-condition").nth(1)
    surname.get_by_label("field").select_option("last_name")
    surname.get_by_label("operator").select_option("starts_with")
    surname.get_by_label("value").fill("s")

    # Counted with the ORM straight from the rows, not through the compiler under test.
    direct = (
        Contact.objects.filter(email__iendswith="@example.com")
        .filter(Q(attributes__points__gt=30) | Q(last_name__istartswith="s"))
        .count()
    )
    assert direct == 3  # ana (41), ben (Smith), cy (33); not bo (.org) nor dan
    expect(page.locator("[data-count]")).to_have_text(str(direct))

    page.get_by_role("button", name="Save segment").click()
    expect(page.locator(".msg")).to_contain_text(re.compile("was saved"))
    rules = Segment.objects.get(name="Keen at example.com").rules
    assert rules["op"] == "and"
    nested = [rule for rule in rules["rules"] if "rules" in rule]
    assert len(nested) == 1 and nested[0]["op"] == "or"
    assert nested[0]["rules"] == [
        {"field": "custom.points", "op": "gt", "value": 30},
        {"field": "last_name", "op": "starts_with", "value": "s"},
    ]
    expect(page.locator("[data-count]")).to_have_text(str(direct))

    # --- the mapping page on a phone: usable, and the page never scrolls sideways ----------
    phone = browser.new_context(
        locale="en-US", viewport=PHONE, storage_state=context.storage_state()
    ).new_page()
    phone.set_default_timeout(TIMEOUT_MS)
    phone.goto(url + reverse("contacts:import"))
    _upload(phone, csv_path, existing="People")
    widths = phone.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert max(widths[:2]) <= widths[2] == PHONE["width"], widths
    for label in ("E-mail", "Points", "Start the import"):
        target = (
            phone.get_by_role("button", name=label)
            if label.startswith("Start")
            else phone.get_by_label(label, exact=True)
        )
        target.scroll_into_view_if_needed()
        box = target.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    phone.on("dialog", lambda dialog: dialog.accept())
    phone.get_by_role("button", name="Cancel").click()
    expect(phone.locator(".badge")).to_have_text("Cancelled")
    assert Contact.objects.count() == 5

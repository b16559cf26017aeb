"""The rule builder in a real browser: build a nested segment, watch the live count, save.

Headless Debian Chromium through Playwright against the live server, like tests/e2e.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.browser import BROWSER_MARKS

PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 20_000

pytestmark = BROWSER_MARKS
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
expect = sync_api.expect

CSV = (
    "email,first name,Age\n"
    "ana@example.com,Ana,41\n"
    "ben@example.com,Ben,19\n"
    "bo@example.org,Bo,50\n"
    "cy@example.com,Cy,33\n"
    "dan@example.com,Dan,12\n"
)


def test_nested_segment_count_matches_the_database(
    live_server, browser, django_user_model, tmp_path
):
    from contacts.models import Contact, Segment
    from contacts.services import fields as fields_service

    django_user_model.objects.create_user(username="maria", password=PASSWORD)
    fields_service.custom_field_create(key="age", label="Age", type="number")
    url = live_server.url
    page = browser.new_context(locale="en-US").new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url + reverse("contacts:segment-create"))
    page.get_by_label("Username or email").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    # Import through the UI, so the typed Age column comes from the importer.
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(CSV, encoding="utf-8")
    page.goto(url + reverse("contacts:import"))
    page.get_by_label("or create a new list named").fill("People")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and choose columns").click()
    # "Age" matches the existing number field; the guesses are kept as they are.
    expect(page.get_by_label("Age", exact=True)).to_have_value("field:age")
    page.get_by_role("button", name="Start the import").click()
    expect(page.locator(".badge")).to_have_text("Done")
    assert Contact.objects.get(email="ana@example.com").attributes == {"age": 41}

    # domain is example.com AND (age > 30 OR first name starts with "b")
    page.goto(url + reverse("contacts:segment-create"))
    page.get_by_label("Name").fill("Grown-ups at example.com or B")
    builder = page.locator("#segment-builder")
    builder.locator("[data-add=condition]").first.click()
    first = builder.locator(".segment-condition").nth(0)
    first.get_by_label("field").select_option("domain")
    first.get_by_label("operator").select_option("equals")
    first.get_by_label("value").fill("example.com")
    expect(page.locator("[data-count]")).to_have_text("4")

    builder.locator("[data-add=group]").first.click()
    inner = builder.locator(".segment-group .segment-group")
    expect(inner.get_by_label("combine")).to_have_value("or")
    age = inner.locator(".segment-condition").nth(0)
    age.get_by_label("field").select_option("custom.age")
    age.get_by_label("operator").select_option("gt")
    age.get_by_label("value").fill("30")
    inner.locator("[data-add=condition]").click()
    name = inner.locator(".segment-condition").nth(1)
    name.get_by_label("field").select_option("first_name")
    name.get_by_label("operator").select_option("starts_with")
    name.get_by_label("value").fill("b")

    # Counted straight from the rows, not through the compiler under test.
    direct = sum(
        1
        for c in Contact.objects.all()
        if c.email.endswith("@example.com")
        and (c.attributes.get("age", 0) > 30 or c.first_name.lower().startswith("b"))
    )
    expect(page.locator("[data-count]")).to_have_text(str(direct))

    # A bad value is explained and the count blanked, not a 500.
    age.get_by_label("value").fill("thirty")
    expect(page.locator("#segment-errors")).to_contain_text("must be a number")
    expect(page.locator("[data-count]")).to_have_text("—")
    age.get_by_label("value").fill("30")
    expect(page.locator("[data-count]")).to_have_text(str(direct))

    page.get_by_role("button", name="Save segment").click()
    expect(page.locator(".msg")).to_contain_text(re.compile("was saved"))
    segment = Segment.objects.get()
    from contacts import selectors

    assert selectors.segment_count(segment.rules)["count"] == direct == 3
    # Reloaded, the builder draws the saved rule again.
    expect(page.locator(".segment-condition")).to_have_count(3)
    expect(page.locator("[data-count]")).to_have_text("3")


def test_a_segment_saved_from_a_report_opens_in_the_builder(
    live_server, browser, django_user_model
):
    """Saved from the report's bounced list, the segment opens in the builder with its
    campaign and bounce type; changing the type recounts, and saving keeps the rule."""
    from campaigns.models import Message
    from contacts import selectors
    from contacts.models import Contact, Segment
    from tests.factories import CampaignFactory
    from tracking.models import Event

    django_user_model.objects.create_user(username="maria", password=PASSWORD)
    campaign = CampaignFactory(name="Spring sale")
    for name, severity in [("ana", "hard"), ("ben", "soft"), ("cy", "soft"), ("dan", None)]:
        contact = Contact.objects.create(email=f"{name}@example.com")
        message = Message.objects.create(
            campaign=campaign, contact=contact, email=contact.email, status="sent"
        )
        if severity:
            Event.objects.create(
                kind="bounce", campaign=campaign, message=message, severity=severity
            )

    page = browser.new_context(locale="en-US").new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(live_server.url + reverse("reports:recipients", args=[campaign.pk]) + "?what=bounced")
    page.get_by_label("Username or email").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#save-segment summary").click()
    expect(page.get_by_label("Segment name")).to_have_value("Bounced — Spring sale")
    page.get_by_role("button", name="Save as segment").click()
    expect(page.locator(".msg")).to_contain_text(re.compile("was saved"))
    segment = Segment.objects.get()
    assert page.url.endswith(reverse("contacts:segment-edit", args=[segment.pk]))

    condition = page.locator("#segment-builder .segment-condition")
    expect(condition).to_have_count(1)
    expect(condition.get_by_label("field")).to_have_value("bounced")
    expect(condition.get_by_label("operator")).to_have_value("campaign")
    expect(condition.get_by_label("campaign")).to_have_value(str(campaign.pk))
    expect(condition.get_by_label("bounce type")).to_have_value("")
    expect(page.locator("[data-count]")).to_have_text("3")

    condition.get_by_label("bounce type").select_option("soft")
    expect(page.locator("[data-count]")).to_have_text("2")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator(".msg")).to_contain_text(re.compile("was saved"))
    segment = Segment.objects.get()
    assert segment.rules["rules"] == [
        {"field": "bounced", "op": "campaign", "value": campaign.pk, "severity": "soft"}
    ]
    assert selectors.segment_count(segment.rules)["count"] == 2
    expect(
        page.locator("#segment-builder .segment-condition").get_by_label("bounce type")
    ).to_have_value("soft")

from __future__ import annotations

import pytest

from campaigns.forms import CampaignForm

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(mailing_list):
    return {
        "name": "Spring news",
        "subject": "Hello {{ contact.first_name|default:'friend' }}",
        "from_name": "Team",
        "from_email": "news@example.com",
        "reply_to": "",
        "html": "<p>Hi {{ contact.first_name }}</p>",
        "lists": [mailing_list.pk],
    }


def test_valid_form_fills_in_the_only_sender(data):
    form = CampaignForm(data)
    assert form.is_valid(), form.errors
    assert "sender" not in form.fields
    assert form.cleaned_data["sender"] == "default"


def test_sender_is_a_choice_when_several_are_configured(data, settings):
    settings.MAILCENTER_SENDERS = {"default": {"BACKEND": "outbox"}, "bulk": {"BACKEND": "outbox"}}
    assert not CampaignForm(data).is_valid()
    form = CampaignForm({**data, "sender": "bulk"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["sender"] == "bulk"
    assert not CampaignForm({**data, "sender": "nope"}).is_valid()


def test_syntax_error_is_shown_on_the_html_field_with_its_line(data):
    form = CampaignForm({**data, "html": "<p>one</p>\n<p>two</p>\n{% if x %}never closed"})
    assert not form.is_valid()
    assert list(form.errors) == ["html"]
    assert form.errors["html"][0].startswith("Line 3: ")
    assert "if" in form.errors["html"][0]


def test_unknown_tag_is_shown_with_its_line(data):
    form = CampaignForm({**data, "html": "a\nb\n{% frobnicate %}"})
    assert not form.is_valid()
    assert form.errors["html"][0].startswith("Line 3: Invalid block tag")


@pytest.mark.parametrize(
    "source",
    [
        "{% load static %}",
        "{% include 'base.html' %}",
        "{% extends 'base.html' %}",
        "{% debug %}",
    ],
)
def test_tags_that_reach_outside_the_template_are_refused(data, source):
    tag = source.split()[1]
    form = CampaignForm({**data, "html": f"<p>hi</p>\n{source}"})
    assert not form.is_valid()
    assert form.errors["html"] == [f"Line 2: the {{% {tag} %}} tag is not allowed in a campaign."]


def test_subject_template_error_is_shown_on_the_subject(data):
    form = CampaignForm({**data, "subject": "Hi {% if %}"})
    assert not form.is_valid()
    assert list(form.errors) == ["subject"]
    assert "Subject:" in form.errors["subject"][0]


def test_body_is_still_checked_when_the_subject_is_refused(data):
    form = CampaignForm({**data, "subject": "Hi\r\nBcc: x@example.com", "html": "{% load x %}"})
    assert not form.is_valid()
    assert set(form.errors) == {"subject", "html"}


@pytest.mark.parametrize("subject", ["Hi\r\nBcc: victim@example.com", "Hi\nthere", "Hi\rthere"])
def test_line_breaks_in_the_subject_are_refused(data, subject):
    form = CampaignForm({**data, "subject": subject})
    assert not form.is_valid()
    assert form.errors["subject"] == ["The subject must be a single line."]


def test_line_breaks_in_the_from_name_are_refused(data):
    form = CampaignForm({**data, "from_name": "Team\r\nBcc: victim@example.com"})
    assert not form.is_valid()
    assert form.errors["from_name"] == ["The from name must be a single line."]


@pytest.mark.parametrize("field", ["from_email", "reply_to"])
def test_a_bad_address_gets_a_clear_message(data, field):
    form = CampaignForm({**data, field: "not an address"})
    assert not form.is_valid()
    assert form.errors[field] == ["Enter an email address, like news@example.com."]


def test_at_least_one_list_is_required(data):
    form = CampaignForm({**data, "lists": []})
    assert not form.is_valid()
    assert form.errors["lists"] == ["Choose at least one list."]


def test_an_unknown_list_is_refused(data):
    form = CampaignForm({**data, "lists": [987654]})
    assert not form.is_valid()
    assert "lists" in form.errors


def test_edit_form_starts_from_the_campaign(campaign, mailing_list):
    form = CampaignForm(instance=campaign)
    assert form.initial["name"] == "Spring news"
    assert form.initial["lists"] == [mailing_list.pk]

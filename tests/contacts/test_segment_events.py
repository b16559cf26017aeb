"""Segment conditions on what happened to a contact's messages: bounces (hard or soft),
unsubscribes, complaints, any activity, machine-only opens and clicks, and people's opens
and clicks without the machines'."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from campaigns.models import Message
from contacts import selectors
from contacts.models import Contact
from contacts.segments import rules_campaign_ids, segment_rules_clean
from contacts.services import fields as fields_service
from contacts.services import segment_create
from tests.factories import CampaignFactory
from tracking.models import Event

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
LONG_AGO = NOW - datetime.timedelta(days=60)


@pytest.fixture
def story(db):
    """Who did what in two campaigns; ``first`` is the one most conditions ask about."""
    first, second = CampaignFactory(name="First"), CampaignFactory(name="Second")
    people = {
        name: Contact.objects.create(email=f"{name}@example.com")
        for name in ("hard", "soft", "both", "mpp", "scan", "read", "quiet", "unsub", "spam")
    }
    messages = {
        name: Message.objects.create(
            campaign=first, contact=contact, email=contact.email, status="sent", sent_at=LONG_AGO
        )
        for name, contact in people.items()
    }

    def event(name, kind, at=LONG_AGO, campaign=None, message=None, **extra):
        Event.objects.create(
            kind=kind,
            campaign=campaign or first,
            message=message or messages[name],
            created_at=at,
            **extra,
        )

    event("hard", "bounce", severity="hard", status_code="5.1.1", smtp_code=550)
    event("soft", "bounce", severity="soft", status_code="4.2.2", at=NOW)
    event("both", "bounce", severity="soft")
    event("both", "bounce", severity="hard")
    event("mpp", "open", is_machine=True, machine_reason="apple_mpp")
    event("scan", "click", is_machine=True, machine_reason="scanner")
    event("scan", "open", at=NOW)  # a person opened, but only a scanner clicked
    event("read", "open", is_machine=True, machine_reason="apple_mpp")
    event("read", "open")
    event("read", "click", at=NOW - datetime.timedelta(days=2))
    event("unsub", "unsubscribe")
    event("spam", "complaint")
    # In the second campaign "quiet" bounced hard and complained: not in the first.
    other = Message.objects.create(
        campaign=second, contact=people["quiet"], email="quiet@example.com", status="sent"
    )
    for kind in ("bounce", "complaint", "unsubscribe"):
        event("quiet", kind, at=NOW, campaign=second, message=other, severity="hard")
    return {"first": first, "second": second, "people": people}


def names(story, rules, now=NOW):
    from contacts.segments import segment_q

    clean = segment_rules_clean(rules)
    found = set(Contact.objects.filter(segment_q(clean, now=now)).values_list("id", flat=True))
    return {name for name, contact in story["people"].items() if contact.pk in found}


def one(field, op, value, **extra):
    return {"op": "and", "rules": [{"field": field, "op": op, "value": value, **extra}]}


def test_bounces_hard_soft_or_either(story):
    first = story["first"].pk
    assert names(story, one("bounced", "campaign", first)) == {"hard", "soft", "both"}
    # A message that bounced soft and then hard counts as hard, as in the report.
    assert names(story, one("bounced", "campaign", first, severity="hard")) == {"hard", "both"}
    assert names(story, one("bounced", "campaign", first, severity="soft")) == {"soft"}
    assert names(story, one("bounced", "not_campaign", first, severity="hard")) == {
        "soft", "mpp", "scan", "read", "quiet", "unsub", "spam",
    }  # fmt: skip
    assert names(story, one("bounced", "within_days", 7)) == {"soft", "quiet"}
    assert names(story, one("bounced", "within_days", 7, severity="hard")) == {"quiet"}
    assert names(story, one("bounced", "not_within_days", 7)) == {
        "hard", "both", "mpp", "scan", "read", "unsub", "spam",
    }  # fmt: skip


def test_unsubscribes_and_complaints(story):
    first, second = story["first"].pk, story["second"].pk
    assert names(story, one("unsubscribed", "campaign", first)) == {"unsub"}
    assert names(story, one("unsubscribed", "campaign", second)) == {"quiet"}
    assert names(story, one("complained", "campaign", first)) == {"spam"}
    assert names(story, one("complained", "within_days", 30)) == {"quiet"}


def test_opens_and_clicks_are_peoples_only(story):
    first = story["first"].pk
    # mpp's only open was Apple's prefetch; read was prefetched and then read.
    assert names(story, one("opened", "campaign", first)) == {"scan", "read"}
    assert names(story, one("clicked", "campaign", first)) == {"read"}
    assert names(story, one("clicked", "within_days", 7)) == {"read"}
    assert "mpp" in names(story, one("opened", "not_campaign", first))


def test_machine_only_and_any_activity(story):
    first = story["first"].pk
    # scan: a person opened, but the only click was a scanner's (the report lists it too).
    assert names(story, one("machine_only", "campaign", first)) == {"mpp", "scan"}
    assert "read" in names(story, one("machine_only", "not_campaign", first))
    everyone_but_quiet = set(story["people"]) - {"quiet"}
    assert names(story, one("activity", "campaign", first)) == everyone_but_quiet
    assert names(story, one("activity", "not_campaign", first)) == {"quiet"}
    assert names(story, one("activity", "within_days", 7)) == {"soft", "scan", "read", "quiet"}


def test_new_conditions_combine_in_one_query(story, django_assert_num_queries):
    first = story["first"].pk
    rules = segment_rules_clean(
        {
            "op": "or",
            "rules": [
                {"field": "bounced", "op": "campaign", "value": first, "severity": "soft"},
                {"field": "machine_only", "op": "campaign", "value": first},
                {
                    "op": "and",
                    "rules": [
                        {"field": "activity", "op": "campaign", "value": first},
                        {"field": "complained", "op": "not_within_days", "value": 3},
                        {"field": "unsubscribed", "op": "campaign", "value": first},
                    ],
                },
            ],
        }
    )
    fields = fields_service.custom_fields_by_key()
    with django_assert_num_queries(1):
        counts = selectors.segment_count(rules, fields)
    assert counts["count"] == len({"soft", "mpp", "scan", "unsub"})


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (one("machine_only", "within_days", 3), "“within_days” does not apply to machine_only"),
        (one("bounced", "campaign", 1, severity="medium"), "choose hard or soft bounces"),
        (one("complained", "campaign", 99999), "There is no campaign with id 99999."),
        (one("unsubscribed", "campaign", "x"), "choose a campaign"),
        (one("activity", "within_days", -1), "number of days"),
        (one("unsubscribed", "is_set", None), "“is_set” does not apply to unsubscribed"),
    ],
)
def test_bad_event_conditions_are_explained(story, rules, message):
    with pytest.raises(ValidationError) as exc:
        segment_rules_clean(rules)
    assert any(message in m for m in exc.value.message_dict["rules"]), exc.value.message_dict


def test_clean_keeps_severity_only_on_bounces(story):
    first = story["first"].pk
    clean = segment_rules_clean(one("bounced", "campaign", str(first), severity="hard"))
    assert clean["rules"] == [
        {"field": "bounced", "op": "campaign", "value": first, "severity": "hard"}
    ]
    clean = segment_rules_clean(one("opened", "campaign", first, severity="hard"))
    assert clean["rules"] == [{"field": "opened", "op": "campaign", "value": first}]
    clean = segment_rules_clean(one("bounced", "within_days", "7", severity=""))
    assert clean["rules"] == [{"field": "bounced", "op": "within_days", "value": 7}]


def test_campaigns_a_rule_names(story):
    first, second = story["first"].pk, story["second"].pk
    rules = {
        "op": "and",
        "rules": [
            {"field": "bounced", "op": "campaign", "value": first},
            {"op": "or", "rules": [{"field": "opened", "op": "not_campaign", "value": second}]},
            {"field": "clicked", "op": "within_days", "value": 5},
            {"field": "list", "op": "in", "value": 77},
        ],
    }
    assert rules_campaign_ids(rules) == {first, second}


def test_builder_page_draws_a_saved_event_segment(auth_client, story, monkeypatch):
    old = story["first"]
    # Older than the builder's menu of latest campaigns: still offered, since it is named.
    monkeypatch.setattr("contacts.views.segments.BUILDER_CAMPAIGNS", 1)
    segment = segment_create(
        name="Hard bounces",
        rules=one("bounced", "campaign", old.pk, severity="hard"),
    )
    html = auth_client.get(reverse("contacts:segment-edit", args=[segment.pk])).content.decode()
    assert "&quot;field&quot;: &quot;bounced&quot;" in html
    assert "&quot;severity&quot;: &quot;hard&quot;" in html
    assert "<strong data-count>2</strong>" in html  # hard, both
    assert '"value": "soft", "label": "soft only"' in html
    assert f'{{"value": {old.pk}, "label": "First"}}' in html
    assert f'{{"value": {story["second"].pk}, "label": "Second"}}' in html
    other = segment_create(
        name="Opened second", rules=one("opened", "campaign", story["second"].pk)
    )
    html = auth_client.get(reverse("contacts:segment-edit", args=[other.pk])).content.decode()
    assert '"label": "First"' not in html


def test_segment_name_free(db):
    assert selectors.segment_name_free("Opened — First") == "Opened — First"
    segment_create(name="Opened — First", rules={})
    segment_create(name="opened — first (2)", rules={})
    assert selectors.segment_name_free("Opened — First") == "Opened — First (3)"
    assert len(selectors.segment_name_free("x" * 300)) <= 200


def test_contact_timeline_shows_what_the_server_said(auth_client, story):
    contact = story["people"]["hard"]
    Event.objects.filter(message__contact=contact).update(diagnostic="550 5.1.1 User unknown")
    html = auth_client.get(reverse("contacts:detail", args=[contact.pk])).content.decode()
    activity = html[html.index('<h2 style="margin-top:0">Activity</h2>') :]
    assert 'Bounce: First</span> <span class="muted"' in activity
    assert "5.1.1 (550) 550 5.1.1 User unknown" in activity

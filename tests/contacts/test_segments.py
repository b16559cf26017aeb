from __future__ import annotations

import datetime
import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Message
from campaigns.selectors import campaign_audience
from contacts import selectors, services
from contacts.models import Contact, Segment, Subscription
from contacts.segments import segment_rules_clean
from contacts.services import fields as fields_service
from tests.factories import CampaignFactory, MailingListFactory
from tracking.models import Event

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def people(db):
    """Five contacts with typed values, some odd ones (a string in a number field)."""
    create = fields_service.custom_field_create
    create(key="age", label="Age", type="number")
    create(key="born", label="Born", type="date")
    create(key="vip", label="VIP", type="boolean")
    create(key="plan", label="Plan", type="choice", options=["Free", "Pro"])
    create(key="city", label="City")
    rows = {
        "ann": (
            "ann@alpha.com",
            "Ann",
            "Lee",
            {"age": 30, "born": "1990-05-01", "vip": True, "plan": "Pro", "city": "Lisbon"},
        ),
        "bob": (
            "bob@beta.org",
            "Bob",
            "Stone",
            {"age": 9.5, "born": "2010-01-31", "vip": False, "plan": "Free", "city": "Porto"},
        ),
        "cy": ("cy@alpha.com", "Cy", "", {"age": "forty", "born": "31.05.2024", "city": ""}),
        "dee": ("dee@gamma.net", "", "Lee", {"age": 100, "city": "lisbon"}),
        "eve": ("Eve.X@Beta.org", "Eve", "Adams", {}),
    }
    made = {}
    for name, (email, first, last, attributes) in rows.items():
        made[name] = Contact.objects.create(
            email=email, first_name=first, last_name=last, attributes=attributes
        )
    return made


def names(people, rules):
    clean = segment_rules_clean(rules)
    found = set(selectors.segment_contacts(clean).values_list("id", flat=True))
    assert selectors.segment_count(clean)["count"] == len(found)
    return {name for name, contact in people.items() if contact.pk in found}


def one(field, op, value=None, **extra):
    condition = {"field": field, "op": op, **extra}
    if value is not None:
        condition["value"] = value
    return {"op": "and", "rules": [condition]}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("email", "equals", "ANN@alpha.com", {"ann"}),
        ("email", "not_equals", "ann@alpha.com", {"bob", "cy", "dee", "eve"}),
        ("email", "contains", "x@b", {"eve"}),
        ("email", "not_contains", "alpha", {"bob", "dee", "eve"}),
        ("email", "starts_with", "B", {"bob"}),
        ("email", "ends_with", ".org", {"bob", "eve"}),
        ("domain", "equals", "Alpha.com", {"ann", "cy"}),
        ("domain", "not_equals", "alpha.com", {"bob", "dee", "eve"}),
        ("domain", "contains", "et", {"bob", "dee", "eve"}),
        ("domain", "ends_with", ".net", {"dee"}),
        ("first_name", "is_set", None, {"ann", "bob", "cy", "eve"}),
        ("first_name", "not_set", None, {"dee"}),
        ("last_name", "equals", "lee", {"ann", "dee"}),
        ("custom.city", "equals", "LISBON", {"ann", "dee"}),
        ("custom.city", "not_equals", "lisbon", {"bob", "cy", "eve"}),
        ("custom.city", "contains", "or", {"bob"}),
        ("custom.city", "not_contains", "lis", {"bob", "cy", "eve"}),
        ("custom.city", "starts_with", "po", {"bob"}),
        ("custom.city", "ends_with", "bon", {"ann", "dee"}),
        ("custom.city", "is_set", None, {"ann", "bob", "dee"}),
        ("custom.city", "not_set", None, {"cy", "eve"}),
        # Numbers compare as numbers: 9.5 < 30 < 100 (as text "100" < "30" < "9.5").
        ("custom.age", "gt", "10", {"ann", "dee"}),
        ("custom.age", "gte", 30, {"ann", "dee"}),
        ("custom.age", "lt", 31, {"ann", "bob"}),
        ("custom.age", "lte", "9,5", {"bob"}),
        ("custom.age", "equals", 100, {"dee"}),
        ("custom.age", "not_equals", 100, {"ann", "bob", "cy", "eve"}),
        # "forty" is not a number: not set, and never compared.
        ("custom.age", "is_set", None, {"ann", "bob", "dee"}),
        ("custom.age", "not_set", None, {"cy", "eve"}),
        ("custom.born", "before", "2000-01-01", {"ann"}),
        ("custom.born", "after", "01.01.2000", {"bob"}),
        ("custom.born", "equals", "2010-01-31", {"bob"}),
        ("custom.born", "is_set", None, {"ann", "bob"}),
        ("custom.born", "not_set", None, {"cy", "dee", "eve"}),
        ("custom.vip", "is_true", None, {"ann"}),
        ("custom.vip", "is_false", None, {"bob"}),
        ("custom.vip", "is_set", None, {"ann", "bob"}),
        ("custom.vip", "not_set", None, {"cy", "dee", "eve"}),
        ("custom.plan", "equals", "pro", {"ann"}),
        ("custom.plan", "not_equals", "Pro", {"bob", "cy", "dee", "eve"}),
        ("custom.plan", "is_set", None, {"ann", "bob"}),
        ("custom.plan", "not_set", None, {"cy", "dee", "eve"}),
    ],
)
def test_every_operator(people, field, op, value, expected):
    assert names(people, one(field, op, value)) == expected, connection.vendor


def test_list_membership_and_subscription_date(people, time_machine):
    news, other = MailingListFactory(), MailingListFactory()
    time_machine.move_to(datetime.datetime(2026, 1, 10, tzinfo=datetime.UTC), tick=False)
    Subscription.objects.create(contact=people["ann"], mailing_list=news)
    time_machine.move_to(datetime.datetime(2026, 5, 30, tzinfo=datetime.UTC), tick=False)
    Subscription.objects.create(contact=people["bob"], mailing_list=news)
    Subscription.objects.create(contact=people["cy"], mailing_list=other)
    Subscription.objects.create(
        contact=people["dee"], mailing_list=news, status=Subscription.Status.UNSUBSCRIBED
    )
    time_machine.move_to(NOW, tick=False)

    assert names(people, one("list", "in", news.pk)) == {"ann", "bob"}
    assert names(people, one("list", "not_in", news.pk)) == {"cy", "dee", "eve"}
    assert names(people, one("subscribed", "before", "2026-01-11")) == {"ann"}
    assert names(people, one("subscribed", "after", "2026-01-10")) == {"bob", "cy"}
    assert names(people, one("subscribed", "within_days", 7)) == {"bob", "cy"}
    assert names(people, one("subscribed", "within_days", "7", list=str(news.pk))) == {"bob"}


def test_engagement(people, time_machine):
    first, second = CampaignFactory(), CampaignFactory()
    time_machine.move_to(datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC), tick=False)
    old = Message.objects.create(
        campaign=first,
        contact=people["ann"],
        email="ann@alpha.com",
        status="sent",
        sent_at=timezone.now(),
    )
    Event.objects.create(kind=Event.Kind.OPEN, campaign=first, message=old)
    time_machine.move_to(datetime.datetime(2026, 5, 31, tzinfo=datetime.UTC), tick=False)
    recent = Message.objects.create(
        campaign=second,
        contact=people["bob"],
        email="bob@beta.org",
        status="sent",
        sent_at=timezone.now(),
    )
    Message.objects.create(
        campaign=second, contact=people["cy"], email="cy@alpha.com", status="failed"
    )
    Event.objects.create(kind=Event.Kind.CLICK, campaign=second, message=recent)
    time_machine.move_to(NOW, tick=False)

    assert names(people, one("opened", "campaign", first.pk)) == {"ann"}
    assert names(people, one("opened", "not_campaign", first.pk)) == {"bob", "cy", "dee", "eve"}
    assert names(people, one("clicked", "within_days", 7)) == {"bob"}
    assert names(people, one("clicked", "not_within_days", 7)) == {"ann", "cy", "dee", "eve"}
    assert names(people, one("opened", "within_days", 7)) == set()
    assert names(people, one("sent", "campaign", second.pk)) == {"bob"}
    assert names(people, one("sent", "within_days", 200)) == {"ann", "bob"}


def test_nested_groups(people):
    rules = {
        "op": "or",
        "rules": [
            {
                "op": "and",
                "rules": [
                    {"field": "domain", "op": "equals", "value": "alpha.com"},
                    {"field": "custom.age", "op": "gt", "value": 18},
                ],
            },
            {
                "op": "and",
                "rules": [
                    {"field": "last_name", "op": "equals", "value": "lee"},
                    {
                        "op": "or",
                        "rules": [
                            {"field": "custom.vip", "op": "is_true"},
                            {"field": "custom.age", "op": "gte", "value": 100},
                        ],
                    },
                ],
            },
            {"field": "email", "op": "starts_with", "value": "eve"},
        ],
    }
    assert names(people, rules) == {"ann", "dee", "eve"}
    # Empty rules: everyone.
    assert names(people, {}) == set(people)


def test_count_is_a_single_query_and_counts_reachable(people, django_assert_num_queries):
    Contact.objects.filter(pk=people["dee"].pk).update(status=Contact.Status.BOUNCED)
    clean = segment_rules_clean(one("custom.age", "gte", 10))
    fields = fields_service.custom_fields_by_key()
    with django_assert_num_queries(1):
        counts = selectors.segment_count(clean, fields)
    assert counts == {"count": 2, "reachable": 1}
    direct = sum(
        1
        for age in Contact.objects.values_list("attributes__age", flat=True)
        if isinstance(age, int | float) and not isinstance(age, bool) and age >= 10
    )
    assert counts["count"] == direct


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("nonsense", "a group must be an object"),
        ({"op": "xor", "rules": []}, "“and” or “or”"),
        (one("nickname", "equals", "x"), "not a field you can filter on"),
        (one("email", "gt", "x"), "“gt” does not apply to email"),
        (one("email", "equals", "  "), "give a value"),
        (one("custom.shoe", "equals", "x"), "no custom field “shoe”"),
        (one("custom.age", "contains", "4"), "“contains” does not apply to Age"),
        (one("custom.age", "gt", "lots"), "“Age” must be a number."),
        (one("custom.born", "before", "soon"), "“Born” must be a date"),
        (one("list", "in", 99999), "There is no list with id 99999."),
        (one("list", "in", "x"), "choose a list"),
        (one("opened", "campaign", 99999), "There is no campaign with id 99999."),
        (one("clicked", "within_days", 0), "number of days"),
        (one("subscribed", "before", "2026-13-01"), "YYYY-MM-DD"),
        ({"op": "and", "rules": [{"op": "or", "rules": []}]}, "this group is empty"),
    ],
)
def test_bad_rules_are_explained(people, rules, message):
    with pytest.raises(ValidationError) as exc:
        segment_rules_clean(rules)
    assert any(message in m for m in exc.value.message_dict["rules"]), exc.value.message_dict


def test_too_deep_and_too_many(people):
    rules: dict = {"field": "email", "op": "is_set"}
    for _level in range(6):
        rules = {"op": "and", "rules": [rules]}
    with pytest.raises(ValidationError, match="nested at most"):
        segment_rules_clean(rules)
    wide = {"op": "or", "rules": [{"field": "email", "op": "is_set"}] * 101}
    with pytest.raises(ValidationError, match="at most 100 conditions"):
        segment_rules_clean(wide)


def test_campaign_audience_with_segment_list_and_exclusions(people):
    news, blocked = MailingListFactory(), MailingListFactory()
    Subscription.objects.create(contact=people["bob"], mailing_list=news)
    Subscription.objects.create(contact=people["eve"], mailing_list=news)
    Subscription.objects.create(contact=people["eve"], mailing_list=blocked)
    adults = services.segment_create(name="Adults", rules=one("custom.age", "gte", 18))
    no_city = services.segment_create(name="Lisbon", rules=one("custom.city", "equals", "lisbon"))
    Contact.objects.filter(pk=people["dee"].pk).update(status=Contact.Status.UNSUBSCRIBED)

    campaign = CampaignFactory(lists=[news])
    services.campaign_audience_set(campaign, segments=[adults])
    # bob, eve from the list; ann, dee from the segment; dee unsubscribed.
    assert set(campaign_audience(campaign)) == {people["ann"], people["bob"], people["eve"]}

    services.campaign_audience_set(campaign, excluded_lists=[blocked], excluded_segments=[no_city])
    assert set(campaign_audience(campaign)) == {people["bob"]}

    # An exclusion on a missing value does not drop contacts the rule does not match.
    services.campaign_audience_set(
        campaign,
        excluded_lists=[],
        excluded_segments=[services.segment_create(name="Old", rules=one("custom.age", "gt", 50))],
    )
    assert set(campaign_audience(campaign)) == {people["ann"], people["bob"], people["eve"]}


def test_segment_service_names_and_rules(people):
    segment = services.segment_create(name="Pro", rules=one("custom.plan", "equals", "pro"))
    assert segment.rules["rules"][0]["value"] == "Pro"
    with pytest.raises(ValidationError) as exc:
        services.segment_create(name=" pro ", rules=one("custom.age", "gt", "x"))
    assert set(exc.value.message_dict) == {"name", "rules"}
    services.segment_update(segment, rules=one("custom.age", "gt", "20"))
    assert segment.rules["rules"][0]["value"] == 20
    campaign = CampaignFactory()
    campaign.status = "sending"
    with pytest.raises(ValidationError, match="draft"):
        services.campaign_audience_set(campaign, segments=[segment])


# --- Pages and API --------------------------------------------------------------------


def test_count_endpoint_counts_or_explains(auth_client, people):
    url = reverse("contacts:segment-count")
    ok = auth_client.post(
        url, {"rules": one("custom.age", "gt", "10")}, content_type="application/json"
    )
    assert ok.json() == {"count": 2, "reachable": 2}
    bad = auth_client.post(
        url, {"rules": one("custom.age", "gt", "ten")}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == ["Condition 1: “Age” must be a number."]
    junk = auth_client.post(url, "{", content_type="application/json")
    assert junk.status_code == 400


def test_segment_pages_create_edit_and_delete(auth_client, people):
    page = auth_client.get(reverse("contacts:segment-create")).content.decode()
    assert 'id="segment-config"' in page and "segments.js" in page
    bad = auth_client.post(
        reverse("contacts:segment-create"),
        {"name": "Teens", "rules": json.dumps(one("custom.age", "lt", "x"))},
    )
    assert bad.status_code == 400 and "must be a number" in bad.content.decode()
    auth_client.post(
        reverse("contacts:segment-create"),
        {"name": "Teens", "rules": json.dumps(one("custom.age", "lt", "20"))},
    )
    segment = Segment.objects.get()
    assert segment.rules["rules"][0]["value"] == 20
    listing = auth_client.get(reverse("contacts:segments")).content.decode()
    assert "Teens" in listing
    auth_client.post(
        reverse("contacts:segment-edit", args=[segment.pk]),
        {"name": "Young", "rules": json.dumps(one("custom.age", "lt", "40"))},
    )
    segment.refresh_from_db()
    assert segment.name == "Young"
    auth_client.post(reverse("contacts:segment-delete", args=[segment.pk]))
    assert not Segment.objects.exists()


def test_campaign_editor_sets_segments_and_exclusions(auth_client, people):
    news = MailingListFactory()
    segment = services.segment_create(name="Adults", rules=one("custom.age", "gte", 18))
    campaign = CampaignFactory(lists=[news])
    edit = auth_client.get(reverse("campaigns:edit", args=[campaign.pk])).content.decode()
    assert reverse("contacts:campaign-audience", args=[campaign.pk]) in edit
    auth_client.post(
        reverse("contacts:campaign-audience", args=[campaign.pk]),
        {"segments": [segment.pk], "excluded_lists": [news.pk]},
    )
    assert list(campaign.segments.all()) == [segment]
    assert list(campaign.excluded_lists.all()) == [news]
    assert set(campaign_audience(campaign)) == {people["ann"], people["dee"]}


def test_segments_api(api_client, people):
    created = api_client.post(
        "/api/v1/segments/",
        {"name": "Pro", "rules": one("custom.plan", "equals", "pro")},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["count"], body["reachable"]) == (1, 1)
    bad = api_client.post(
        "/api/v1/segments/", {"name": "X", "rules": one("custom.plan", "gt", 1)}, format="json"
    )
    assert bad.status_code == 400 and "rules" in bad.json()["errors"]
    counted = api_client.post(
        "/api/v1/segments/count/", {"rules": one("domain", "equals", "alpha.com")}, format="json"
    )
    assert counted.json() == {"count": 2, "reachable": 2}
    news = MailingListFactory()
    campaign = api_client.post(
        "/api/v1/campaigns/",
        {
            "name": "Seg",
            "subject": "Hi",
            "from_email": "a@example.com",
            "html": "<p>x</p>",
            "segments": [body["id"]],
            "excluded_lists": [news.pk],
        },
        format="json",
    )
    assert campaign.status_code == 201, campaign.json()
    assert campaign.json()["segments"] == [body["id"]]
    none = api_client.post(
        "/api/v1/campaigns/",
        {"name": "No", "subject": "Hi", "from_email": "a@example.com", "html": "<p>x</p>"},
        format="json",
    )
    assert none.status_code == 400

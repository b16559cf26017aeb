"""Saving a report's recipients list as a segment: the segment holds the same people as
the list it was saved from (machine opens, bounces, complaints and unsubscribes mixed in),
stays live, and opens in the rule builder; bounces show their code and diagnostic."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from campaigns.models import Message
from contacts import selectors as contact_selectors
from contacts.models import Segment
from tests.factories import CampaignFactory
from tests.tracking.test_reports import IPHONE, SENT_AT, _open, _traffic, sent_campaign
from tracking import selectors
from tracking.models import Event
from tracking.report_views import RECIPIENT_TABS

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(settings, django_capture_on_commit_callbacks):
    return sent_campaign(settings, django_capture_on_commit_callbacks, name="Spring sale")


def _save(auth_client, campaign, what, name):
    return auth_client.post(
        reverse("reports:recipients-segment", args=[campaign.pk]), {"what": what, "name": name}
    )


def _listed(campaign, what) -> set[int]:
    """The contacts on the report's recipients list, as the page lists them."""
    if what == selectors.NOT_OPENED:
        return set(selectors.campaign_not_opened(campaign).values_list("contact_id", flat=True))
    return set(
        selectors.campaign_recipients(campaign, what).values_list("message__contact_id", flat=True)
    )


def _in_segment(segment) -> set[int]:
    return set(contact_selectors.segment_contacts(segment.rules).values_list("id", flat=True))


def test_every_recipients_filter_can_be_saved_as_a_segment():
    assert set(selectors.RECIPIENT_LISTS) >= {"", *selectors.RECIPIENT_FILTERS}
    assert set(selectors.RECIPIENT_SEGMENT_CONDITIONS) == set(selectors.RECIPIENT_LISTS)
    assert {key for key, _label in RECIPIENT_TABS} == set(selectors.RECIPIENT_SEGMENT_CONDITIONS)


def test_each_saved_list_is_a_segment_of_the_same_people(auth_client, client, campaign):
    _traffic(client, campaign)
    # Another campaign's events must not leak into this campaign's segments.
    other = CampaignFactory()
    stray = Message.objects.filter(campaign=campaign, email="p5@gmail.test").get()
    elsewhere = Message.objects.create(
        campaign=other, contact_id=stray.contact_id, email=stray.email, status="sent"
    )
    for kind in ("open", "click", "bounce", "complaint", "unsubscribe"):
        Event.objects.create(kind=kind, campaign=other, message=elsewhere, severity="hard")

    expected_sizes = {
        "": 9,  # everyone but p5 (nothing here) and q4 (an autoreply is not a bounce)
        "opened": 3,  # p0 (read after its MPP prefetch), p2, q2: people only
        "clicked": 3,
        "unsubscribed": 1,
        "bounced": 2,
        "complained": 1,
        "machine": 2,  # p1 (MPP only), q1 (bot open, HEAD click)
        # delivered, and no person opened or clicked: p1, q1 (machines only), p5 (nothing
        # here, whatever it did in the other campaign), q3 (complained), q4 (autoreply)
        "not_opened": 5,
    }
    for what, size in expected_sizes.items():
        listed = _listed(campaign, what)
        assert len(listed) == size, what
        response = _save(auth_client, campaign, what, f"List {what or 'all'}")
        segment = Segment.objects.get(name=f"List {what or 'all'}")
        assert response.status_code == 302, what
        assert response["Location"] == reverse("contacts:segment-edit", args=[segment.pk])
        assert _in_segment(segment) == listed, what
        assert contact_selectors.segment_count(segment.rules)["count"] == size, what
        assert (stray.contact_id in _in_segment(segment)) == (what == "not_opened"), what

    # The lists on the page say the same: the bounced list names both bounced addresses.
    page = auth_client.get(reverse("reports:recipients", args=[campaign.pk]) + "?what=bounced")
    assert set(re.findall(r">([pq]\d@\w+\.test)</a>", page.content.decode())) == {
        "p3@gmail.test",
        "p4@gmail.test",
    }


def test_machine_opens_are_not_opens_in_the_segment(auth_client, client, campaign):
    m = _traffic(client, campaign)
    _save(auth_client, campaign, "opened", "Opened")
    _save(auth_client, campaign, "machine", "Machines")
    opened = _in_segment(Segment.objects.get(name="Opened"))
    machines = _in_segment(Segment.objects.get(name="Machines"))
    mpp_only = m["p1@gmail.test"].contact_id
    mpp_then_read = m["p0@gmail.test"].contact_id
    assert mpp_only not in opened and mpp_only in machines
    assert mpp_then_read in opened and mpp_then_read not in machines


def test_the_segment_stays_live(auth_client, client, campaign):
    m = _traffic(client, campaign)
    _save(auth_client, campaign, "opened", "Openers")
    segment = Segment.objects.get()
    assert contact_selectors.segment_count(segment.rules)["count"] == 3
    with time_machine.travel(SENT_AT + dt.timedelta(hours=5), tick=False):
        _open(client, m["p5@gmail.test"], IPHONE)
    assert m["p5@gmail.test"].contact_id in _listed(campaign, "opened")
    assert _in_segment(segment) == _listed(campaign, "opened")
    assert len(_in_segment(segment)) == 4


def test_saved_segment_page_shows_count_message_and_rule(auth_client, client, campaign):
    _traffic(client, campaign)
    response = _save(auth_client, campaign, "bounced", f"Bounced — {campaign.name}")
    page = auth_client.get(response["Location"])
    html = page.content.decode()
    assert "was saved" in html
    assert "<strong data-count>2</strong>" in html
    segment = Segment.objects.get()
    assert segment.rules == {
        "op": "and",
        "rules": [{"field": "bounced", "op": "campaign", "value": campaign.pk}],
    }
    assert f"Recipients of “{campaign.name}”" in segment.description
    # The builder gets the rule and what it needs to draw it: the field and the campaign.
    rules = re.search(r'id="id_rules"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert json.loads(rules.replace("&quot;", '"')) == segment.rules
    config = json.loads(re.search(r'id="segment-config"[^>]*>(.*?)</script>', html, re.S)[1])
    assert {"value": campaign.pk, "label": campaign.name} in config["campaigns"]
    assert config["campaignOps"] == ["campaign", "not_campaign"]
    assert "bounced" in config["text"] and "machineOnly" in config["text"]
    # Saved again from the builder unchanged, the rule stays the same.
    auth_client.post(
        reverse("contacts:segment-edit", args=[segment.pk]),
        {"name": segment.name, "rules": json.dumps(segment.rules)},
    )
    segment.refresh_from_db()
    assert segment.rules["rules"][0] == {"field": "bounced", "op": "campaign", "value": campaign.pk}


def test_recipients_page_offers_the_form_with_a_free_name(auth_client, campaign):
    url = reverse("reports:recipients", args=[campaign.pk])
    html = auth_client.get(url + "?what=opened").content.decode()
    assert reverse("reports:recipients-segment", args=[campaign.pk]) in html
    assert f'value="Opened — {campaign.name}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'name="what" value="opened"' in html
    _save(auth_client, campaign, "opened", f"opened — {campaign.name}")
    html = auth_client.get(url + "?what=opened").content.decode()
    assert f'value="Opened — {campaign.name} (2)"' in html
    html = auth_client.get(url).content.decode()
    assert f'value="Any activity — {campaign.name}"' in html
    standalone = auth_client.get(
        reverse("reports:recipients-segment", args=[campaign.pk]) + "?what=machine"
    )
    assert f'value="Machine only — {campaign.name}"' in standalone.content.decode()


def test_bad_names_and_lists_are_explained(auth_client, campaign):
    empty = _save(auth_client, campaign, "opened", "   ")
    assert empty.status_code == 400 and "Give the segment a name." in empty.content.decode()
    _save(auth_client, campaign, "opened", "Openers")
    taken = _save(auth_client, campaign, "clicked", "OPENERS")
    assert taken.status_code == 400
    assert "A segment named “OPENERS” already exists." in taken.content.decode()
    unknown = _save(auth_client, campaign, "nonsense", "Odd")
    assert unknown.status_code == 400
    assert "cannot be saved as a segment" in unknown.content.decode()
    too_long = _save(auth_client, campaign, "opened", "x" * 201)
    assert too_long.status_code == 400
    assert Segment.objects.count() == 1


def test_saving_needs_login_and_csrf(client, user, campaign):
    url = reverse("reports:recipients-segment", args=[campaign.pk])
    anonymous = client.post(url, {"what": "opened", "name": "X"})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url, {"what": "opened", "name": "X"}).status_code == 403
    assert not Segment.objects.exists()
    assert client.get(reverse("reports:recipients-segment", args=[999999])).status_code == 302


def test_unknown_campaign_is_404(auth_client, db):
    url = reverse("reports:recipients-segment", args=[999999])
    assert auth_client.post(url, {"what": "opened", "name": "X"}).status_code == 404


def test_bounced_recipients_show_code_and_diagnostic(auth_client, client, campaign):
    m = _traffic(client, campaign)
    html = auth_client.get(
        reverse("reports:recipients", args=[campaign.pk]) + "?what=bounced"
    ).content.decode()
    for email in ("p3@gmail.test", "p4@gmail.test"):
        event = Event.objects.get(kind="bounce", message=m[email])
        assert event.status_code and event.diagnostic
        cell = re.search(rf'data-bounce="{m[email].pk}">(.*?)</span></span>', html, re.S)[1]
        assert f"<strong>{event.status_code}</strong>" in cell
        if event.smtp_code:
            assert f"({event.smtp_code})" in cell
        assert event.diagnostic[:40] in cell.replace("&#x27;", "'").replace("&quot;", '"')


def test_a_message_that_bounced_soft_then_hard_shows_the_hard_bounce(auth_client, campaign):
    message = Message.objects.filter(campaign=campaign).first()
    soft = Event(kind="bounce", campaign=campaign, message=message, severity="soft")
    soft.status_code, soft.diagnostic = "4.2.2", "Mailbox full"
    hard = Event(kind="bounce", campaign=campaign, message=message, severity="hard")
    hard.status_code, hard.smtp_code, hard.diagnostic = "5.1.1", 550, "No such user"
    later = Event(kind="bounce", campaign=campaign, message=message, severity="soft")
    later.status_code, later.diagnostic = "4.4.1", "Timed out"
    for n, event in enumerate((soft, hard, later)):
        event.created_at = SENT_AT + dt.timedelta(hours=n)
        event.save()
    assert selectors.message_bounces([message.pk])[message.pk] == hard

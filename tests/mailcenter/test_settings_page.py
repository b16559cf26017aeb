from datetime import timedelta

import pytest

from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_time_zone_choice_changes_how_times_are_shown(auth_client, user):
    page = auth_client.get("/settings/")
    assert page.status_code == 200
    response = auth_client.post("/settings/", {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    assert user.mailcenter_settings.time_zone == "Asia/Tokyo"
    page = auth_client.get("/settings/")
    assert 'value="Asia/Tokyo" selected' in page.content.decode()


def test_unknown_time_zone_is_refused(auth_client, user):
    response = auth_client.post("/settings/", {"time_zone": "Mars/Olympus"}, follow=True)
    assert "is not a time zone we know" in response.content.decode()


def test_times_are_stored_in_utc(user):
    campaign = CampaignFactory()
    assert campaign.created_at.tzinfo is not None
    assert campaign.created_at.utcoffset() == timedelta(0)

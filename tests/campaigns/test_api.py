from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from campaigns.models import Campaign, Message
from mailcenter.models import OutboxMessage
from tests.factories import MailingListFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/campaigns/"

FIELDS = {
    "id",
    "name",
    "subject",
    "from_name",
    "from_email",
    "reply_to",
    "html",
    "lists",
    "segments",
    "excluded_lists",
    "excluded_segments",
    "track_opens",
    "track_clicks",
    "sender",
    "status",
}
STATS_KEYS = {
    "recipients",
    "sent",
    "failed",
    "opens_unique",
    "opens_total",
    "clicks_unique",
    "clicks_total",
    "unsubscribes",
    "links",
}


def _payload(mailing_list, **overrides):
    return {
        "name": "API news",
        "subject": "Hi {{ contact.first_name|default:'there' }}",
        "from_name": "Team",
        "from_email": "news@example.com",
        "reply_to": "replies@example.com",
        "html": "<p>Hello {{ contact.first_name }}</p>",
        "lists": [mailing_list.pk],
        **overrides,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", URL), ("post", URL), ("get", f"{URL}1/stats/"), ("post", f"{URL}1/send/")],
)
def test_auth_is_required(db, method, path):
    response = getattr(APIClient(), method)(path, format="json")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_token_auth_works(db, user, campaign):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(URL).status_code == 200


def test_list_and_retrieve(api_client, campaign, mailing_list):
    listing = api_client.get(URL).json()
    assert listing["count"] == 1
    item = listing["results"][0]
    assert set(item) == FIELDS
    assert item["lists"] == [mailing_list.pk]
    assert item["status"] == "draft"
    assert api_client.get(f"{URL}{campaign.pk}/").json() == item


def test_create(api_client, mailing_list, user):
    response = api_client.post(URL, _payload(mailing_list), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == FIELDS
    campaign = Campaign.objects.get(pk=data["id"])
    assert campaign.name == "API news"
    assert campaign.created_by == user
    assert campaign.sender == "default"
    assert list(campaign.lists.all()) == [mailing_list]


def test_create_ignores_status(api_client, mailing_list):
    response = api_client.post(URL, _payload(mailing_list, status="sent"), format="json")
    assert response.status_code == 201
    assert response.json()["status"] == "draft"


def test_create_with_an_invalid_template_names_the_line(api_client, mailing_list):
    response = api_client.post(
        URL, _payload(mailing_list, html="<p>a</p>\n<p>b</p>\n{% if %}"), format="json"
    )
    assert response.status_code == 400
    data = response.json()
    assert data["detail"].startswith("html: Line 3: ")
    assert data["errors"]["html"][0].startswith("Line 3: ")
    assert not Campaign.objects.exists()


def test_create_with_a_forbidden_tag(api_client, mailing_list):
    response = api_client.post(
        URL, _payload(mailing_list, html="{% include 'base.html' %}"), format="json"
    )
    assert response.status_code == 400
    assert "{% include %} tag is not allowed" in response.json()["detail"]


def test_create_refuses_a_multiline_subject(api_client, mailing_list):
    response = api_client.post(
        URL, _payload(mailing_list, subject="Hi\r\nBcc: victim@example.com"), format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "subject: The subject must be a single line."


def test_create_needs_lists_and_valid_addresses(api_client, mailing_list):
    no_lists = api_client.post(URL, _payload(mailing_list, lists=[]), format="json")
    assert no_lists.status_code == 400
    assert "lists" in no_lists.json()["errors"]
    bad = api_client.post(URL, _payload(mailing_list, from_email="nope"), format="json")
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("from_email: ")


def test_update_and_partial_update(api_client, campaign):
    other = MailingListFactory()
    url = f"{URL}{campaign.pk}/"
    response = api_client.patch(url, {"name": "Renamed", "lists": [other.pk]}, format="json")
    assert response.status_code == 200, response.json()
    campaign.refresh_from_db()
    assert campaign.name == "Renamed"
    assert list(campaign.lists.all()) == [other]
    full = _payload(other, name="Replaced")
    assert api_client.put(url, full, format="json").status_code == 200
    campaign.refresh_from_db()
    assert campaign.name == "Replaced"
    assert campaign.reply_to == "replies@example.com"


def test_partial_update_with_an_invalid_template(api_client, campaign):
    response = api_client.patch(
        f"{URL}{campaign.pk}/", {"html": "ok\n\n{% frobnicate %}"}, format="json"
    )
    assert response.status_code == 400
    assert "Line 3" in response.json()["detail"]


def test_partial_update_of_the_subject_checks_it(api_client, campaign):
    response = api_client.patch(f"{URL}{campaign.pk}/", {"subject": "{% if %}"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("subject: ")


def test_update_of_a_non_draft_is_refused(api_client, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING)
    response = api_client.patch(f"{URL}{campaign.pk}/", {"name": "Changed"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Only a draft campaign can be edited; this one is sending."
    }
    campaign.refresh_from_db()
    assert campaign.name == "Spring news"


def test_delete(api_client, campaign):
    assert api_client.delete(f"{URL}{campaign.pk}/").status_code == 204
    assert not Campaign.objects.exists()


def test_delete_of_a_non_draft_is_refused(api_client, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENT)
    response = api_client.delete(f"{URL}{campaign.pk}/")
    assert response.status_code == 400
    assert response.json()["detail"] == "Only a draft campaign can be deleted."


def test_unknown_campaign_is_a_json_404(api_client, db):
    response = api_client.get(f"{URL}999/")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_send(api_client, campaign, subscribers, send_now):
    response = send_now(api_client.post, f"{URL}{campaign.pk}/send/")
    assert response.status_code == 202
    assert response.json()["id"] == campaign.pk
    assert response.json()["status"] == "sending"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert sorted(OutboxMessage.objects.values_list("recipient", flat=True)) == sorted(
        c.email for c in subscribers
    )


def test_send_refusals_are_400_with_a_message(api_client, campaign, empty_campaign, send_now):
    empty = send_now(api_client.post, f"{URL}{empty_campaign.pk}/send/")
    assert empty.status_code == 400
    assert "no recipients" in empty.json()["detail"]
    assert not Message.objects.filter(campaign=empty_campaign).exists()
    send_now(api_client.post, f"{URL}{campaign.pk}/send/")
    again = send_now(api_client.post, f"{URL}{campaign.pk}/send/")
    assert again.status_code == 400
    assert again.json() == {"detail": "Only a draft campaign can be sent."}
    assert OutboxMessage.objects.count() == 3


def test_stats_keys(api_client, campaign, send_now):
    send_now(api_client.post, f"{URL}{campaign.pk}/send/")
    data = api_client.get(f"{URL}{campaign.pk}/stats/").json()
    assert set(data) == STATS_KEYS
    assert data["recipients"] == 3
    assert data["sent"] == 3
    assert data["opens_unique"] == 0
    assert [link["url"] for link in data["links"]] == [
        "https://example.com/offer",
        "https://example.com/blog?a=1&b=2",
    ]
    assert set(data["links"][0]) == {"index", "url", "clicks_total", "clicks_unique"}


def test_schema_documents_send_and_stats(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    send = schema["paths"]["/api/v1/campaigns/{id}/send/"]["post"]
    assert set(send["responses"]) == {"202", "400"}
    assert "requestBody" not in send
    stats = schema["paths"]["/api/v1/campaigns/{id}/stats/"]["get"]
    ref = stats["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(component["properties"]) == STATS_KEYS
    campaign = schema["components"]["schemas"]["Campaign"]
    assert set(campaign["properties"]) == FIELDS


def test_create_chooses_a_configured_sender_and_refuses_an_unknown_one(
    api_client, mailing_list, settings
):
    settings.MAILCENTER_SENDERS = {
        "default": {"BACKEND": "outbox"},
        "bulk": {"BACKEND": "outbox"},
    }
    response = api_client.post(URL, _payload(mailing_list, sender="bulk"), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["sender"] == "bulk"
    assert Campaign.objects.get(pk=response.json()["id"]).sender == "bulk"
    response = api_client.post(URL, _payload(mailing_list, sender="nope"), format="json")
    assert response.status_code == 400
    assert "nope" in response.json()["errors"]["sender"][0]
    response = api_client.post(URL, _payload(mailing_list), format="json")
    assert response.json()["sender"] == "default"

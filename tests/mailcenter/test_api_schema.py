import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_valid_and_warning_free(tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/lists/", "/api/v1/contacts/", "/api/v1/imports/", "/api/v1/campaigns/"):
        assert path in text
    assert "/api/v1/campaigns/{id}/send/" in text and "/api/v1/campaigns/{id}/stats/" in text


def test_docs_page_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert "cdn." not in html and "unpkg" not in html

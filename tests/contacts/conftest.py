from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from contacts import services
from contacts.models import ContactImport, MailingList
from tests.factories import MailingListFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The shared ``user`` fixture hashes a password; PBKDF2 made each test ~0.5 s slower."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def mailing_list(db) -> MailingList:
    return MailingListFactory(name="Newsletter")


@pytest.fixture
def run_import(mailing_list) -> Callable[..., ContactImport]:
    """Store ``content`` as an upload and run the importer on it directly, no task."""

    def run(
        content: bytes | str,
        name: str = "contacts.csv",
        into: MailingList | None = None,
        mode: str = ContactImport.Mode.ADD_UPDATE,
        left_policy: str = ContactImport.LeftPolicy.SKIP,
    ) -> ContactImport:
        if isinstance(content, str):
            content = content.encode()
        item = ContactImport(
            mailing_list=into or mailing_list,
            original_name=name,
            mode=mode,
            left_policy=left_policy,
        )
        item.file.save(name, ContentFile(content), save=False)
        item.save()
        services.contact_import_run(item.pk)
        item.refresh_from_db()
        return item

    return run


@pytest.fixture
def api_client(user) -> APIClient:
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture(autouse=True)
def _private_cache(settings, request):
    """A fresh in-memory cache per test: rate limits and the once-an-hour mail guard live
    there, and the PostgreSQL run's Redis cache would carry them from test to test."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"contacts-{request.node.nodeid}",
        }
    }

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory


@pytest.fixture
def mailing_list(db):
    return MailingListFactory(name="Newsletter")


@pytest.fixture
def subscribers(mailing_list):
    """Three active subscribers of ``mailing_list``, in id order."""
    return [SubscriptionFactory(mailing_list=mailing_list).contact for _ in range(3)]


@pytest.fixture
def campaign(mailing_list, subscribers):
    return CampaignFactory(name="Spring news", lists=[mailing_list])


@pytest.fixture
def empty_campaign(db):
    return CampaignFactory(name="Nobody", lists=[MailingListFactory()])


@pytest.fixture
def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def send_now(django_capture_on_commit_callbacks):
    """Run ``fn`` and then the send tasks it queued on commit (eager Celery)."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run

"""Recompute the report counters from the events, for every campaign or the ones named.

Needed once after upgrading to the release that added the counters (events recorded
before it are not in them), and whenever they are suspected to be wrong.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from campaigns.models import Campaign
from tracking.services import report_aggregates_rebuild


class Command(BaseCommand):
    help = "Recompute the report counters of campaigns from their events."

    def add_arguments(self, parser):
        parser.add_argument("campaign_ids", nargs="*", type=int)

    def handle(self, *args, **options):
        ids = options["campaign_ids"] or list(Campaign.objects.values_list("pk", flat=True))
        for campaign_id in ids:
            count = report_aggregates_rebuild(campaign_id)
            self.stdout.write(f"campaign {campaign_id}: {count} events")

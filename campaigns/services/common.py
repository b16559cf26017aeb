from __future__ import annotations


class CampaignError(Exception):
    """A campaign operation refused, with a message fit for the user."""

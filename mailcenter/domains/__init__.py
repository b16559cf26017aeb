"""Sending domains: DKIM keys, the DNS records to publish, their checks, and signing."""

"""Outgoing webhooks: operators' endpoints told about deliveries, bounces, opens, clicks,
unsubscribes, complaints and subscriptions, signed and retried (see services)."""

"""Named senders: those of ``MAILCENTER_SENDERS`` and those defined in Settings → Senders."""

"""Django's EMAIL_BACKEND on top of our senders, for the app's own mail (password reset)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from mailcenter.delivery import Accepted, DeliveryError, OutgoingMessage, get_backend
from mailcenter.domains.signing import dkim_sign_message


class DeliveryEmailBackend(BaseEmailBackend):
    sender_alias = "default"

    def send_messages(self, email_messages: list[EmailMessage]) -> int:
        outgoing = []
        for number, email in enumerate(email_messages):
            raw = email.message().as_bytes(linesep="\r\n")
            # Signed when the From domain has an active DKIM key, once for all recipients.
            raw = dkim_sign_message(raw, email.from_email or settings.DEFAULT_FROM_EMAIL)
            outgoing.extend(
                OutgoingMessage(
                    ref=f"django-{number}-{index}",
                    recipient=recipient,
                    return_path=email.from_email or settings.DEFAULT_FROM_EMAIL,
                    from_email=email.from_email or settings.DEFAULT_FROM_EMAIL,
                    subject=str(email.subject),
                    raw=raw,
                )
                for index, recipient in enumerate(email.recipients())
            )
        if not outgoing:
            return 0
        try:
            with get_backend(self.sender_alias) as backend:
                results = backend.send_batch(outgoing)
        except DeliveryError:
            if self.fail_silently:
                return 0
            raise
        return sum(isinstance(r, Accepted) for r in results)

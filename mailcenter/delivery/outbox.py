"""Keep messages locally instead of sending them: the embedded default.

Settings → Outbox shows what was kept, so a new install can send a campaign and look at
the result without any mail server.
"""

from __future__ import annotations

from mailcenter.delivery.base import Accepted, BaseBackend, OutgoingMessage, Result


class OutboxBackend(BaseBackend):
    def send_batch(self, messages: list[OutgoingMessage]) -> list[Result]:
        from mailcenter.models import OutboxMessage

        OutboxMessage.objects.bulk_create(
            OutboxMessage(
                sender=self.alias,
                recipient=m.recipient,
                return_path=m.return_path,
                subject=m.subject[:998],
                raw=m.raw,
                message_ref=m.ref,
            )
            for m in messages
        )
        return [Accepted(ref=m.ref, reply="stored in outbox") for m in messages]

"""Read bounces, complaints and mailto unsubscribes from the bounce mailbox over IMAP.

For a return path that is a mailbox (MAILCENTER_BOUNCE_IMAP_URL) rather than an MX
pointed at bounce_server. The beat scheduler runs the same pass every
MAILCENTER_BOUNCE_IMAP_INTERVAL seconds when the URL is set; this command is for a
process of its own (``--loop``) or for trying the settings out (one pass).
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from tracking import conf
from tracking.mailbox import MailboxError, bounce_mailbox_poll


class Command(BaseCommand):
    help = "Poll the bounce mailbox (MAILCENTER_BOUNCE_IMAP_URL) once, or every interval."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=None, help="mailbox URL (MAILCENTER_BOUNCE_IMAP_URL)")
        parser.add_argument(
            "--loop", action="store_true", help="poll every MAILCENTER_BOUNCE_IMAP_INTERVAL s"
        )

    def handle(self, *args, **options):
        url = options["url"] or conf.bounce_imap_url()
        if not url:
            raise CommandError(_("MAILCENTER_BOUNCE_IMAP_URL is not set: there is no mailbox."))
        if not options["loop"]:
            try:
                self._pass(url)
            except MailboxError as exc:
                raise CommandError(str(exc)) from None
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        interval = conf.bounce_imap_interval()
        while not stop.is_set():
            try:
                self._pass(url)
            except MailboxError as exc:
                # Keep polling: an unreachable server or a changed password is fixed
                # outside, and the next pass picks up where this one could not.
                self.stderr.write(str(exc))
            stop.wait(interval)

    def _pass(self, url: str) -> None:
        result = bounce_mailbox_poll(url)
        self.stdout.write(
            _("%(processed)s processed, %(duplicates)s already recorded, %(failed)s failed")
            % {
                "processed": result.processed,
                "duplicates": result.duplicates,
                "failed": result.failed,
            }
        )
        self.stdout.flush()

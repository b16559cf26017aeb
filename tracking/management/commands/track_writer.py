"""Write queued opens and clicks to the database, continuously (instead of, or beside,
the Celery beat task): one process per machine is plenty; several are safe."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from tracking.queue import hits_drain


class Command(BaseCommand):
    help = "Write queued tracking hits to the database until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="idle wait, seconds")
        parser.add_argument("--once", action="store_true", help="drain once and exit")

    def handle(self, *args, **options):
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.is_set():
            written = hits_drain(max_batches=20)
            if options["verbosity"] > 1 and written:
                self.stdout.write(f"{written} events written")
            if options["once"]:
                break
            if not written:
                stop.wait(options["interval"])

"""Write queued opens and clicks to the database, continuously (instead of, or beside,
the Celery beat task): one process per machine is plenty; several are safe."""

from __future__ import annotations

import os
import signal
import threading

from django.core.management.base import BaseCommand

from tracking.queue import hits_drain


class Command(BaseCommand):
    help = "Write queued tracking hits to the database until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="idle wait, seconds")
        parser.add_argument("--once", action="store_true", help="drain once and exit")
        parser.add_argument(
            "--nice",
            type=int,
            default=10,
            help="CPU priority to lower the writer by (default 10; 0 keeps it as it is)",
        )

    def handle(self, *args, **options):
        # The queue exists so that a click storm is answered now and written a little later:
        # on a machine shared with the web workers, the writer yields the CPU to them and
        # catches up when the storm passes (nothing is lost meanwhile; it is all in Redis).
        if options["nice"] > 0:
            os.nice(options["nice"])
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

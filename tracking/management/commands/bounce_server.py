"""Receive bounces, complaints and mailto unsubscribes over SMTP.

Point the MX of MAILCENTER_BOUNCE_DOMAIN (or a relay in front) at this server. It accepts
only ``bounces+TOKEN@`` and ``unsubscribe+TOKEN@`` recipients with a valid signature.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from tracking import conf
from tracking.inbound import bounce_controller


class Command(BaseCommand):
    help = "Run the inbound SMTP server for bounces, complaints and mailto unsubscribes."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="address to bind (127.0.0.1)")
        parser.add_argument("--port", type=int, default=None, help="port (2525)")
        parser.add_argument(
            "--domain", default=None, help="accepted domain (MAILCENTER_BOUNCE_DOMAIN)"
        )

    def handle(self, *args, **options):
        host = options["host"] or conf.bounce_server_host()
        port = options["port"] or conf.bounce_server_port()
        domain = (options["domain"] or conf.bounce_domain()).lower()
        controller = bounce_controller(host, port, domain)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        controller.start()
        self.stdout.write(f"bounce_server listening on {host}:{port} for @{domain}")
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            controller.stop()

"""Run the whole embedded installation in the foreground: web, worker and scheduler.

Two child processes from this same Python environment: gunicorn serving
``mailcenter.wsgi`` and one Celery worker with the beat scheduler embedded (``-B``).
Each child gets its own process group, so a Ctrl-C reaches only this command, which
then stops both children once and in order (a second signal to Celery would turn its
warm shutdown into a cold one). When either child dies, the other is stopped too, so
the installation is never half up.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# How long the children get to finish requests and the task in hand before being killed.
STOP_GRACE_SECONDS = 20
POLL_SECONDS = 0.3
_PR_SET_PDEATHSIG = 1


def default_bind() -> str:
    return os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"


def bind_url(bind: str) -> str:
    """The address to open in a browser for a gunicorn ``--bind`` value."""
    if bind.startswith(("unix:", "fd://")):
        return bind
    host, _sep, port = bind.rpartition(":")
    if host in {"", "0.0.0.0", "[::]"}:  # noqa: S104 - only mapped to a display address
        host = "127.0.0.1"
    return f"http://{host}:{port or '8000'}/"


def _die_with_parent() -> None:
    # If this command is killed with SIGKILL it cannot stop its children; ask the kernel
    # to send them SIGTERM instead, so no orphan keeps the port or the broker busy.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = (
        "Run gunicorn and a Celery worker with embedded beat in the foreground. Ctrl-C stops both."
    )
    requires_system_checks = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--bind", default=default_bind(), help="gunicorn bind ($BIND, or 127.0.0.1:$PORT)"
        )
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
        parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
        parser.add_argument("--loglevel", default="info", help="Celery log level")

    def commands(self, options: dict[str, Any]) -> dict[str, list[str]]:
        python = sys.executable
        return {
            "web": [
                python, "-m", "gunicorn", "mailcenter.wsgi",
                "--bind", options["bind"],
                "--workers", str(options["workers"]),
                "--threads", str(options["threads"]),
                "--graceful-timeout", str(STOP_GRACE_SECONDS - 5),
            ],
            "worker": [
                python, "-m", "celery", "-A", "mailcenter", "worker", "-B",
                "--concurrency", str(options["concurrency"]),
                "-l", options["loglevel"],
                "-s", str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
            ],
        }  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        stop_requests: list[int] = []

        def request_stop(signum: int, _frame: object) -> None:
            stop_requests.append(signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, request_stop)

        children: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name, argv in self.commands(options).items():
                children[name] = subprocess.Popen(  # noqa: S603 - our own argv
                    argv,
                    cwd=settings.BASE_DIR,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # no threads exist yet, so safe
                )
        except OSError as exc:
            self._stop(children, stop_requests)
            raise CommandError(f"cannot start {name}: {exc}") from exc

        self.stdout.write(
            self.style.SUCCESS(
                f"Mailcenter is running: open {bind_url(options['bind'])}  "
                "(web, worker and scheduler; Ctrl-C stops all)"
            )
        )
        self.stdout.flush()

        died: tuple[str, int] | None = None
        while not stop_requests and died is None:
            for name, proc in children.items():
                code = proc.poll()
                if code is not None:
                    died = (name, code)
                    break
            else:
                time.sleep(POLL_SECONDS)

        if died is not None:
            others = ", ".join(n for n in children if n != died[0])
            self.stderr.write(f"The {died[0]} process exited (code {died[1]}); stopping {others}.")
        else:
            self.stdout.write("Stopping web, worker and scheduler…")
        self._stop(children, stop_requests)
        if died is not None:
            sys.exit(died[1] or 1)

    def _stop(self, children: dict[str, subprocess.Popen[bytes]], stop_requests: list[int]) -> None:
        """SIGTERM every live child (graceful in gunicorn, warm shutdown in Celery); kill
        the process groups of those still up after the grace period or a second Ctrl-C."""
        seen = len(stop_requests)
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(p.poll() is None for p in children.values()):
            if time.monotonic() > deadline or len(stop_requests) > max(seen, 1):
                break
            time.sleep(POLL_SECONDS)
        for name, proc in children.items():
            if proc.poll() is None:
                self.stderr.write(f"The {name} process did not stop in time; killing it.")
            # The whole group: gunicorn's workers and Celery's pool processes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

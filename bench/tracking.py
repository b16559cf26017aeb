"""How fast do the open pixel and the click redirect answer under a storm, against a bare
WSGI app that returns the same bytes, and does every request's event reach the database?

    python bench/tracking.py [--messages N] [--workers W] [--duration S] [--connections C]

Needs PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres: a
throwaway database ``mailcenter_bench_tracking`` is created beside it), Redis
(127.0.0.1:6379, database 12, keys of its own) and Debian's ``wrk``.

1. Fixtures: N contacts, a campaign with two tracked links sent to all of them an hour ago
   (so no click looks like a scanner's), and a wrk script that cycles through every
   message's pixel URL and both click URLs: a mix of 1 open to 2 clicks over 3N tokens,
   with a desktop browser's user agent.
2. The ceiling: gunicorn with W sync workers serving a bare WSGI app that answers the
   same paths with the same bytes (the GIF, or a 302 to the same Location), under wrk.
3. Mailcenter: gunicorn with W sync workers serving mailcenter.wsgi, hits queued in
   Redis, twice: first as the queue is meant to absorb a storm, with ``manage.py
   track_writer`` started when wrk stops (the headline figures: in a scale-out install
   the writer runs on the worker machines); then with the writer running beside the web
   workers on the same cores, as on a one-machine install (printed and in the JSON as
   ``writer_running_*``).
4. After each run the writer drains the queue; then the events in the database are
   counted against the requests wrk completed.

Before each wrk run, a few sequential requests let every gunicorn worker load its app and
open its connections (they are left out of the counts).

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import benchdb

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "mailcenter_bench_tracking"
REDIS_URL = "redis://127.0.0.1:6379/12"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PIXEL_B64 = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

BARE_APP = """
import base64
PIXEL = base64.b64decode("{pixel}")
LINKS = {links!r}
NO_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"

def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/t/o/"):
        start_response("200 OK", [("Content-Type", "image/gif"),
                                  ("Content-Length", str(len(PIXEL))),
                                  ("Cache-Control", NO_CACHE),
                                  ("X-Content-Type-Options", "nosniff")])
        return [PIXEL]
    index = int(path.rstrip("/").rsplit(".", 1)[0].rsplit("-", 1)[-1], 36)
    start_response("302 Found", [("Content-Type", "text/html; charset=utf-8"),
                                 ("Location", LINKS[index % len(LINKS)]),
                                 ("Content-Length", "0"),
                                 ("Cache-Control", NO_CACHE),
                                 ("X-Content-Type-Options", "nosniff")])
    return [b""]
"""

WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local counter = 0
wrk.headers["User-Agent"] = "%(ua)s"
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter * 7919 + %(seed)s) %% #paths + 1])
end
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="recipients, default 5000")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, default 2")
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk, default 15")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections, 64")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads, default 2")
    parser.add_argument(
        "--drain-timeout", type=float, default=300, help="seconds the writer may take"
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def prepare_database() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not url.startswith(("postgres://", "postgresql://")):
        benchdb.skip("bench/tracking.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    return benchdb.create(url, BENCH_DB)


def drop_database(admin: str) -> None:
    benchdb.drop(admin, BENCH_DB)


def create_fixtures(n: int) -> tuple[int, list[str], list[str]]:
    """N sent messages of one campaign; return (campaign id, paths, link targets)."""
    from django.conf import settings
    from django.utils import timezone

    from campaigns import rendering, services
    from campaigns.models import Campaign, Message
    from contacts.models import Contact, MailingList, Subscription

    mailing_list = MailingList.objects.create(name="Bench")
    contacts = Contact.objects.bulk_create(
        Contact(email=f"reader{i}@example{i % 50}.test") for i in range(n)
    )
    Subscription.objects.bulk_create(
        Subscription(contact=c, mailing_list=mailing_list) for c in contacts
    )
    campaign = Campaign.objects.create(
        name="Storm",
        subject="Hello",
        from_email="news@example.com",
        html=(
            '<p>Hi</p><a href="https://shop.example.com/sale">Sale</a>'
            ' <a href="https://blog.example.com/news">News</a>'
        ),
    )
    campaign.lists.set([mailing_list])
    settings.MAILCENTER_SEND_CONCURRENCY = 0  # no send tasks: the messages are marked sent
    services.campaign_start(campaign.pk)
    Message.objects.filter(campaign=campaign).update(
        status=Message.Status.SENT, sent_at=timezone.now() - timedelta(hours=1)
    )
    paths = []
    base = len(settings.BASE_URL)
    for message_id in Message.objects.filter(campaign=campaign).values_list("pk", flat=True):
        # The URLs the rendered messages carry.
        urls = rendering.tracking_urls(message_id, 2, campaign.pk)
        paths.extend(url[base:] for url in [urls["open"], *urls["links"]])
    targets = list(campaign.links.order_by("index").values_list("url", flat=True))
    return campaign.pk, paths, targets


def run_wrk(port: int, args, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            WRK,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
        check=True,
    ).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def warm_up(port: int, paths: list[str], count: int) -> None:
    """Let every worker load the app and open its connections before wrk measures."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for path in paths[:count]:
        with contextlib.suppress(urllib.error.HTTPError):
            opener.open(f"http://127.0.0.1:{port}{path}", timeout=30).read()


def gunicorn(app: str, port: int, workers: int, env: dict, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ],
        cwd=cwd,
        env=env,
    )
    wait_for_port(port)
    return proc


def start_writer(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "track_writer", "--interval", "0.2"], cwd=ROOT, env=env
    )


def main() -> int:
    args = parse_args()
    if not Path(WRK).exists():
        benchdb.skip("needs wrk: apt-get install -y wrk")
    tmpdir = Path(tempfile.mkdtemp(prefix="mailcenter-bench-tracking-"))
    prefix = f"mailcenter:bench:{os.getpid()}"
    os.environ.update(
        {
            "MAILCENTER_VAR_DIR": str(tmpdir),
            "CELERY_BROKER_URL": REDIS_URL,
            "MAILCENTER_TRACKING_QUEUE": "auto",
            "MAILCENTER_TRACKING_QUEUE_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "mailcenter.settings",
        }
    )
    os.environ.pop("MAILCENTER_MODE", None)
    admin = prepare_database()
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from tracking import queue
    from tracking.models import Event

    procs: list[subprocess.Popen] = []
    result: dict[str, object] = {}
    try:
        call_command("migrate", verbosity=0, interactive=False)
        campaign_id, paths, targets = create_fixtures(args.messages)
        (tmpdir / "paths.txt").write_text("\n".join(paths) + "\n")
        script = tmpdir / "mix.lua"
        script.write_text(WRK_SCRIPT % {"paths": tmpdir / "paths.txt", "ua": BROWSER, "seed": 17})
        (tmpdir / "bare.py").write_text(BARE_APP.format(pixel=PIXEL_B64, links=targets))
        print(
            f"fixtures: {args.messages} messages, {len(paths)} URLs (1 open : 2 clicks); "
            f"gunicorn -w {args.workers} (sync); wrk -t{args.threads} "
            f"-c{args.connections} -d{args.duration}s"
        )
        env = dict(os.environ)

        port = free_port()
        bare = gunicorn("bare:app", port, args.workers, env, tmpdir)
        procs.append(bare)
        warm_up(port, paths, 20 * args.workers)
        ceiling = run_wrk(port, args, script)
        stop(bare)
        print(
            f"ceiling (bare WSGI, same bytes): {ceiling['rps']:.0f} req/s, "
            f"p99 {ceiling['p99_ms']:.1f} ms, {ceiling['requests']} requests"
        )

        port = free_port()
        app = gunicorn("mailcenter.wsgi", port, args.workers, env, ROOT)
        procs.append(app)
        warm_up(port, paths, 20 * args.workers)
        queue.hits_drain()
        phases = {}
        for phase, writer_during in (("queued", False), ("writer_running", True)):
            before = Event.objects.filter(campaign_id=campaign_id).count()
            writer = start_writer(env) if writer_during else None
            if writer:
                procs.append(writer)
            measured = run_wrk(port, args, script)
            if writer is None:
                writer = start_writer(env)
                procs.append(writer)
            left_at_end = queue.queue_length()
            t0 = time.monotonic()
            while queue.queue_length() and time.monotonic() - t0 < args.drain_timeout:
                time.sleep(0.2)
            stop(writer)
            queue.hits_drain()  # whatever a last batch left pending
            drained = time.monotonic() - t0
            events = Event.objects.filter(campaign_id=campaign_id).count() - before
            measured.update(
                events=events,
                left_at_end=left_at_end,
                drained=drained,
                lost=max(0, measured["requests"] - measured["bad"] - events),
                # wrk does not count the requests still in flight when it stops (at most
                # one per connection), though the server answered and recorded them.
                in_flight=max(0, events - (measured["requests"] - measured["bad"])),
                ratio=measured["rps"] / ceiling["rps"] if ceiling["rps"] else 0.0,
            )
            phases[phase] = measured
            label = {
                "queued": "hits queued, the writer drains after the storm",
                "writer_running": "the writer running beside, on the same cores",
            }[phase]
            print(
                f"mailcenter, {label}: {measured['rps']:.0f} req/s, "
                f"p99 {measured['p99_ms']:.1f} ms, {measured['requests']} requests, "
                f"{measured['bad']} not 2xx/3xx"
                + (
                    f", socket errors: {measured['socket_errors']}"
                    if measured["socket_errors"]
                    else ""
                )
            )
            print(
                f"  writer: {left_at_end} hits queued when wrk stopped, drained in "
                f"{drained:.1f}s; {events} events in the database for "
                f"{measured['requests']} requests ({measured['lost']} lost; "
                f"{measured['in_flight']} more from requests in flight when wrk stopped, "
                f"at most {args.connections})"
            )
            print(
                f"  ratio {measured['ratio']:.2f} of the bare app (goal >= 0.50), "
                f"p99 {measured['p99_ms']:.1f} ms (goal < 50)"
            )
        stop(app)
        headline, beside = phases["queued"], phases["writer_running"]
        result = {
            "bench": "tracking",
            "value": round(headline["rps"], 1),
            "unit": "req/s",
            "ceiling": round(ceiling["rps"], 1),
            "ratio": round(headline["ratio"], 3),
            "p99_ms": round(headline["p99_ms"], 2),
            "lost": headline["lost"] + beside["lost"],
            "requests": headline["requests"],
            "events": headline["events"],
            "writer_running_value": round(beside["rps"], 1),
            "writer_running_ratio": round(beside["ratio"], 3),
            "writer_running_p99_ms": round(beside["p99_ms"], 2),
            "workers": args.workers,
        }
        print(json.dumps(result), flush=True)
    finally:
        for proc in procs:
            stop(proc)
        from tracking.queue import _redis

        client = _redis(REDIS_URL)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        drop_database(admin)
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())

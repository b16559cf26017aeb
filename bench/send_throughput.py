"""How fast does a campaign go out, against how fast plain smtplib could push the same bytes?

    python bench/send_throughput.py [--recipients N] [--connections K] [--time-limit S]
                                    [--dkim rsa|ed25519|none] [--batch-size B]
                                    [--in-process] [--redis-url URL]

Builds a fresh database (a throwaway PostgreSQL database ``mailcenter_bench`` when
DATABASE_URL points at PostgreSQL, else a temporary SQLite file), N contacts in one list and
a ~30 KB personalised HTML campaign with tracked links, and sends it through the ``smtp``
backend to a sink on loopback that throws mail away. The From domain gets a sending domain
with a freshly generated DKIM key (RSA-2048 unless ``--dkim`` says otherwise), so every
message is signed as it would be in production.

On PostgreSQL with Redis reachable the send runs as in production: a real
``celery -A mailcenter worker`` (prefork pool of K processes) on a Redis database that the
benchmark owns (``--redis-url``, default redis://127.0.0.1:6379/13, emptied before and
after the run: never point it at a database anyone else uses), the real ``campaign_start``
queueing K send-task chains on commit, and this process polling the database until the
campaign is sent. Throughput is the messages sent over the time from ``campaign_start`` to
the last message's ``sent_at``; peak memory is the largest peak RSS (VmHWM) of any one
worker process. With ``--in-process`` (and on SQLite or without Redis) no Celery is
involved: ``campaign_send_batch`` runs in a loop in this process, or in K forked processes
when K > 1, like Celery's prefork pool.

The ceiling is plain smtplib sending one pre-built message of the same size over the same
number of persistent connections to the same sink, measured before and after the pipeline
and averaged (the machine's load moves in between). Also printed: the per-message cost of
each stage (render, MIME, sign, send), measured on a sample, and the CPU time per message
of every process involved, for the pipeline and for the ceiling.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchdb
import benchworkers

ROOT = Path(__file__).resolve().parent.parent
SMTP_SINK = Path("/usr/sbin/smtp-sink")
BENCH_DB = "mailcenter_bench"
SENDER_ALIAS = "bench"
SAMPLE_SIZE = 500
FROM_DOMAIN = "outfitters.example"
DKIM_ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256", "none": None}
CEILING_MAX = 5000
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000, help="default 10000")
    parser.add_argument("--connections", type=int, default=1, help="parallel senders, default 1")
    parser.add_argument(
        "--time-limit", type=float, default=600, help="seconds before it stops and reports"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the setting")
    parser.add_argument(
        "--dkim",
        choices=["rsa", "ed25519", "none"],
        default="rsa",
        help="key the From domain signs with: RSA-2048 (default), Ed25519, or no signing",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the send service in this process (forked when K > 1) instead of Celery "
        "workers; the only mode on SQLite or without Redis",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="broker for the Celery workers: a Redis database this benchmark owns, emptied "
        f"before and after the run (default {DEFAULT_REDIS_URL})",
    )
    args = parser.parse_args()
    if args.recipients < 1 or args.connections < 1:
        parser.error("--recipients and --connections must be at least 1")
    return args


# --- database ------------------------------------------------------------------------------


def prepare_database(tmpdir: Path) -> tuple[str, str | None]:
    """Point DATABASE_URL at a fresh database; return (kind, admin dsn to drop it with)."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return "postgresql", benchdb.create(url, BENCH_DB)
    os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir / 'bench.sqlite3'}"
    return "sqlite", None


def drop_database(admin: str | None) -> None:
    if admin is not None:
        benchdb.drop(admin, BENCH_DB)


# --- the sink ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the SMTP sink did not come up on 127.0.0.1:{port}")


@dataclass
class Sink:
    kind: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    counter_file: Path | None = None
    controller: object | None = None
    handler: object | None = None
    extra: dict = field(default_factory=dict)

    def received(self) -> int | None:
        """Messages the sink has taken so far, by its own count."""
        if self.handler is not None:
            return self.handler.count  # type: ignore[attr-defined]
        if self.counter_file is None:
            return None
        # smtp-sink -c rewrites one status line with \r: "sess=N quit=N mesg=N".
        tail = self.counter_file.read_bytes()[-200:].decode("ascii", "replace")
        for chunk in reversed(tail.replace("\n", "\r").split("\r")):
            for item in chunk.split():
                if item.startswith("mesg="):
                    return int(item[5:])
        return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.controller is not None:
            self.controller.stop()  # type: ignore[attr-defined]


def start_sink(tmpdir: Path) -> Sink:
    port = free_port()
    if SMTP_SINK.exists():
        counter_file = tmpdir / "smtp-sink.counters"
        argv = [str(SMTP_SINK), "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "postfix"]  # it refuses to run as root
        # No -d/-D: mail is read and thrown away, never written to disk.
        argv += [f"127.0.0.1:{port}", "1000"]
        with counter_file.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        sink = Sink("smtp-sink", port, proc=proc, counter_file=counter_file)
        try:
            wait_for_port(port)
        except RuntimeError:
            sink.stop()
            raise
        return sink

    from aiosmtpd.controller import Controller

    class CountingHandler:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            self.count += 1
            return "250 OK"

    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print(
        "WARNING: /usr/sbin/smtp-sink not found (Debian package postfix); using an in-process "
        "aiosmtpd sink, which tops out around 350-600 msg/s and shares this process's CPU, "
        "so both figures below are capped by the sink, not by Mailcenter."
    )
    return Sink("aiosmtpd", port, controller=controller, handler=handler)


# --- fixtures: contacts and a realistic campaign -------------------------------------------

CITIES = ["Lisbon", "Berlin", "Kraków", "Montréal", "São Paulo", "Osaka", "Nairobi", "Tbilisi"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example", "inbox.example"]
LINKS = [
    "https://shop.example.com/autumn-sale?utm_source=newsletter&utm_campaign=bench",
    "https://shop.example.com/products/rain-jacket",
    "https://shop.example.com/products/trail-shoes",
    "https://blog.example.com/2026/11/how-we-source-wool",
    "https://shop.example.com/stores",
    "https://www.example.com/help/shipping",
]
PARAGRAPH = (
    "Our autumn collection is built for the weather you actually get: layers that pack "
    "small, fabrics that dry fast and seams that hold up season after season. Every piece is "
    "tested on the trails around our workshop before it reaches the shop, and we publish the "
    "repair guide for each one so it lasts as long as you want it to. "
)


def campaign_html(target_bytes: int = 30_000) -> str:
    head = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Autumn at Example Outfitters</title>
<style>body{margin:0;background:#f4f4f4;font-family:Helvetica,Arial,sans-serif}
.wrap{max-width:640px;margin:0 auto;background:#fff}.btn{background:#1a73e8;color:#fff;
padding:12px 20px;border-radius:4px;text-decoration:none}</style></head>
<body><table class="wrap" role="presentation" width="100%" cellpadding="0" cellspacing="0">
<tr><td style="padding:24px"><p style="font-size:12px;color:#666">
<a href="{{ webview_url }}">View this email in your browser</a></p>
<h1 style="font-size:24px">Hello {{ contact.first_name|default:"friend" }},</h1>
<p>Here is what is new this month{% if contact.attributes.city %} for our friends in
{{ contact.attributes.city }}{% endif %}.</p>
{% if contact.attributes.plan == "member" %}<p><strong>Members get 20% off with code
MEMBER20 until Sunday.</strong></p>{% else %}<p>Join the club and get 20% off your next
order.</p>{% endif %}
"""
    tail = """<p style="font-size:12px;color:#666">You receive this because {{ contact.email }}
subscribed to Example Outfitters news. <a href="{{ unsubscribe_url }}">Unsubscribe</a>.</p>
</td></tr></table></body></html>"""
    sections: list[str] = []
    body = head
    index = 0
    while len(body.encode()) + len(tail) < target_bytes:
        link = LINKS[index % len(LINKS)] if index < len(LINKS) else None
        section = (
            f'<h2 style="font-size:18px">Story {index + 1}</h2>'
            f'<p style="line-height:1.5">{PARAGRAPH * 3}</p>'
        )
        if link:
            section += f'<p><a class="btn" href="{link}">Read more</a></p>'
        sections.append(section)
        body = head + "\n".join(sections)
        index += 1
    return body + "\n" + tail


def create_fixtures(recipients: int, sink_port: int) -> int:
    from django.conf import settings

    from campaigns.models import Campaign
    from contacts.models import Contact, MailingList, Subscription

    mailing_list = MailingList.objects.create(name="Benchmark subscribers")
    Contact.objects.bulk_create(
        (
            Contact(
                email=f"reader{i}@{DOMAINS[i % len(DOMAINS)]}",
                first_name=f"Reader{i}",
                last_name="Example",
                attributes={
                    "city": CITIES[i % len(CITIES)],
                    "plan": "member" if i % 3 == 0 else "free",
                },
            )
            for i in range(recipients)
        ),
        batch_size=2000,
    )
    Subscription.objects.bulk_create(
        (
            Subscription(contact_id=contact_id, mailing_list=mailing_list)
            for contact_id in Contact.objects.values_list("id", flat=True).iterator()
        ),
        batch_size=2000,
    )
    settings.MAILCENTER_SENDERS = {
        **settings.MAILCENTER_SENDERS,
        SENDER_ALIAS: {
            "BACKEND": "smtp",
            "OPTIONS": {"host": "127.0.0.1", "port": sink_port, "security": "none", "timeout": 30},
        },
    }
    campaign = Campaign.objects.create(
        name="Benchmark: autumn newsletter",
        subject="{{ contact.first_name|default:'Friend' }}, the autumn collection is here",
        from_name="Example Outfitters",
        from_email=f"news@{FROM_DOMAIN}",
        reply_to=f"hello@{FROM_DOMAIN}",
        html=campaign_html(),
        sender=SENDER_ALIAS,
    )
    campaign.lists.set([mailing_list])
    return campaign.pk


def create_dkim_key(algorithm: str | None):
    """Give the From domain an active key, as Settings → Domains would; None = unsigned."""
    if algorithm is None:
        return None
    from mailcenter.domains import services as domain_services

    domain = domain_services.sending_domain_create(FROM_DOMAIN)
    return domain_services.dkim_key_generate(domain.pk, algorithm, "bench")


def check_signature(raw: bytes, key) -> str:
    """Verify one signed message with dkimpy against the key's record (no DNS)."""
    if key is None:
        return "none (--dkim none)"
    import dkim

    from mailcenter.domains import keys

    record = keys.record_value(key.algorithm, key.public_key).encode()
    try:
        ok = dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)
    except Exception as exc:  # dkimpy without pynacl cannot check Ed25519
        return f"could not be checked by dkimpy: {exc}"
    return "verified by dkimpy" if ok else "FAILED dkimpy's verification"


# --- the measured parts --------------------------------------------------------------------


def _send_worker(campaign_id: int, batch_size: int | None, deadline: float) -> int:
    """Call the send service until it reports no more work or time is up; return batches."""
    from django.db import connections

    from campaigns.services import campaign_send_batch

    batches = 0
    try:
        while time.monotonic() < deadline:
            if not campaign_send_batch(campaign_id, batch_size):
                break
            batches += 1
    finally:
        connections.close_all()
    return batches


def _send_worker_process(campaign_id: int, batch_size: int | None, deadline: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _send_worker(campaign_id, batch_size, deadline)


def run_send(campaign_id: int, connections_n: int, batch_size: int | None, deadline: float) -> None:
    if connections_n == 1:
        _send_worker(campaign_id, batch_size, deadline)
        return
    from django.db import connections

    # Forked children must open their own database connections.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(target=_send_worker_process, args=(campaign_id, batch_size, deadline))
        for _ in range(connections_n)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=max(deadline - time.monotonic(), 0) + 60)
        if proc.is_alive():
            proc.terminate()
            proc.join()


def choose_mode(args: argparse.Namespace, db_kind: str) -> tuple[str, str]:
    """``celery`` on PostgreSQL with Redis reachable, else ``in-process``; and why."""
    if args.in_process:
        return "in-process", "--in-process"
    if db_kind != "postgresql":
        return "in-process", "SQLite: the Celery workers need PostgreSQL (and Redis)"
    if not benchworkers.redis_reachable(args.redis_url):
        return "in-process", f"Redis is not reachable at {args.redis_url}"
    return "celery", f"Celery workers on {args.redis_url}"


def workers_start(connections_n: int, tmpdir: Path) -> benchworkers.Workers:
    """Start the worker (prefork, one pool process per connection) on this run's database,
    broker and senders, and wait until it takes tasks."""
    from django.conf import settings

    from mailcenter.celery import app

    env = {
        **os.environ,
        # The DKIM keys are stored encrypted with a key derived from SECRET_KEY.
        "SECRET_KEY": settings.SECRET_KEY,
        "MAILCENTER_SENDERS": json.dumps(settings.MAILCENTER_SENDERS),
    }
    workers = benchworkers.start(ROOT, env, connections_n, tmpdir / "worker.log", "bench")
    try:
        ready_s = benchworkers.wait_ready(workers, app, connections_n)
    except BaseException:
        workers.stop()
        raise
    workers.sample()
    print(
        f"workers: celery prefork, {connections_n} pool process(es), ready in {ready_s:.1f}s "
        f"(idle peak RSS {workers.peak_rss_mb()} MB per process)"
    )
    return workers


def pg_backend_pids() -> list[int]:
    """The PostgreSQL server processes serving this database, other than our own."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def wait_for_campaign(
    campaign_id: int,
    workers: benchworkers.Workers,
    deadline: float,
    pg_cpu: benchworkers.CpuMeter,
) -> None:
    """Poll until the campaign leaves ``sending`` (sent, or auto-paused), the worker dies or
    time is up, sampling the workers' memory and CPU, and their database backends' CPU."""
    from campaigns.models import Campaign, Message

    next_progress = time.monotonic() + PROGRESS_SECONDS
    while time.monotonic() < deadline:
        workers.sample()
        pg_cpu.sample(pg_backend_pids())
        if not workers.alive():
            raise RuntimeError(f"the Celery worker exited:\n{workers.output_tail()}")
        status = Campaign.objects.values_list("status", flat=True).get(pk=campaign_id)
        if status != Campaign.Status.SENDING:
            return
        if time.monotonic() >= next_progress:
            sent = Message.objects.filter(
                campaign_id=campaign_id, status=Message.Status.SENT
            ).count()
            print(f"  ... {sent} sent, peak RSS so far {workers.peak_rss_mb()} MB", flush=True)
            next_progress += PROGRESS_SECONDS
        time.sleep(POLL_SECONDS)


def last_sent_at(campaign_id: int) -> float | None:
    """When the campaign's last message was recorded sent, in seconds since the epoch."""
    from django.db.models import Max

    from campaigns.models import Message

    last = Message.objects.filter(campaign_id=campaign_id, status=Message.Status.SENT).aggregate(
        t=Max("sent_at")
    )["t"]
    return last.timestamp() if last else None


def _smtplib_push(port: int, raw: bytes, count: int, deadline: float) -> int:
    sent = 0
    conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        conn.ehlo()
        for i in range(count):
            if time.monotonic() > deadline:
                break
            conn.sendmail("bounces@outfitters.example", [f"reader{i}@example.com"], raw)
            sent += 1
    finally:
        conn.quit()
    return sent


def _smtplib_push_process(port: int, raw: bytes, count: int, deadline: float, out) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out.put(_smtplib_push(port, raw, count, deadline))


def run_ceiling(port: int, raw: bytes, total: int, connections_n: int, deadline: float) -> tuple:
    shares = [total // connections_n + (1 if i < total % connections_n else 0)
              for i in range(connections_n)]  # fmt: skip
    started = time.perf_counter()
    if connections_n == 1:
        sent = _smtplib_push(port, raw, total, deadline)
    else:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        procs = [
            context.Process(target=_smtplib_push_process, args=(port, raw, n, deadline, queue))
            for n in shares
        ]
        for proc in procs:
            proc.start()
        sent = sum(queue.get(timeout=max(deadline - time.monotonic(), 0) + 60) for _ in procs)
        for proc in procs:
            proc.join()
    return sent, time.perf_counter() - started


def _render_and_build(compiled, message) -> tuple[float, float, float, bytes]:
    """Render, build and DKIM-sign one recipient's message, as the send loop does; return
    the seconds each step took and the signed bytes."""
    from campaigns import rendering
    from mailcenter.domains.signing import dkim_sign_message

    contact = message.contact
    t0 = time.perf_counter()
    rendered = rendering.render_message(
        compiled,
        rendering.contact_context(
            message.email, contact.first_name, contact.last_name, contact.attributes
        ),
        message.pk,
    )
    t1 = time.perf_counter()
    raw = rendering.build_mime(
        compiled,
        rendered,
        message.email,
        message_id_value=rendering.message_id_header(
            compiled.campaign_id, message.pk, compiled.domain
        ),
    )
    t2 = time.perf_counter()
    signed = dkim_sign_message(raw, compiled.from_email)
    return t1 - t0, t2 - t1, time.perf_counter() - t2, signed


def stage_costs(campaign_id: int) -> dict[str, float]:
    """Seconds per message for render, MIME and signing, over a sample of real recipients."""
    from campaigns import rendering
    from campaigns.models import Campaign, Message

    campaign = Campaign.objects.get(pk=campaign_id)
    started = time.perf_counter()
    compiled = rendering.compile_campaign(campaign)
    compile_s = time.perf_counter() - started
    sample = list(
        Message.objects.filter(campaign_id=campaign_id).select_related("contact")[:SAMPLE_SIZE]
    )
    render_s = mime_s = sign_s = 0.0
    for message in sample:
        render_one, mime_one, sign_one, _raw = _render_and_build(compiled, message)
        render_s += render_one
        mime_s += mime_one
        sign_s += sign_one
    n = max(len(sample), 1)
    return {
        "compile": compile_s,
        "render": render_s / n,
        "mime": mime_s / n,
        "sign": sign_s / n,
        "sample": len(sample),
    }


def sample_raw(campaign_id: int) -> bytes:
    """The wire bytes of one real (signed) message of the campaign, for the ceiling."""
    from campaigns import rendering
    from campaigns.models import Campaign, Message

    compiled = rendering.compile_campaign(Campaign.objects.get(pk=campaign_id))
    message = Message.objects.select_related("contact").filter(campaign_id=campaign_id).first()
    return _render_and_build(compiled, message)[3]


def sample_raw_unsent(campaign_id: int, message_pk: int) -> bytes:
    """Wire bytes of the size the campaign's messages will have, before it is started:
    its first recipient rendered under an unsaved message (tokens name ``message_pk``)."""
    from campaigns import rendering
    from campaigns.models import Campaign, Message
    from campaigns.selectors import campaign_audience

    campaign = Campaign.objects.get(pk=campaign_id)
    contact = campaign_audience(campaign).order_by("id").first()
    message = Message(pk=message_pk, campaign=campaign, contact=contact, email=contact.email)
    return _render_and_build(rendering.compile_campaign(campaign), message)[3]


def measure_ceiling(
    sink: Sink, sink_pids: list[int], raw: bytes, count: int, connections_n: int, deadline: float
) -> tuple[float, dict[str, float]]:
    """Run the smtplib ceiling; return its msg/s and the CPU seconds per message it cost
    (smtplib's processes, the sink)."""
    sink_cpu = benchworkers.CpuMeter()
    sink_cpu.sample(sink_pids)
    sink_cpu.mark()
    own_cpu = benchworkers.own_cpu_seconds()
    sent, seconds = run_ceiling(sink.port, raw, count, connections_n, deadline)
    sink_cpu.sample(sink_pids)
    per = 1 / max(sent, 1)
    cpu = {
        "smtplib": (benchworkers.own_cpu_seconds() - own_cpu) * per,
        "sink": sink_cpu.seconds() * per,
    }
    rate = sent / seconds if seconds else 0.0
    print(
        f"  {sent} times over {connections_n} connection(s): {seconds:.2f}s → {rate:.0f} msg/s "
        f"(load {os.getloadavg()[0]:.2f})"
    )
    return rate, cpu


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)  # Linux reports KiB


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.0f} µs"


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    started_all = time.monotonic()
    deadline = started_all + args.time_limit
    tmpdir = Path(tempfile.mkdtemp(prefix="mailcenter-bench-"))
    # Settings are read at import: everything goes to the environment before django.setup().
    os.environ["MAILCENTER_VAR_DIR"] = str(tmpdir)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.pop("MAILCENTER_MODE", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailcenter.settings")
    db_kind, admin_dsn = prepare_database(tmpdir)
    mode, why = choose_mode(args, db_kind)
    if mode == "celery":
        # The workers inherit this environment: broker, send concurrency, batch size.
        os.environ["CELERY_BROKER_URL"] = args.redis_url
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
        os.environ["MAILCENTER_SEND_CONCURRENCY"] = str(args.connections)
        if args.batch_size:
            os.environ["MAILCENTER_BATCH_SIZE"] = str(args.batch_size)
        benchworkers.redis_flush(args.redis_url)
    sys.path.insert(0, str(ROOT))
    # A SIGTERM ends the run through the same clean-up as Ctrl-C: workers, sink, database.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db.models import Count

    from campaigns import services
    from campaigns.models import Campaign, Message

    if mode == "in-process":
        # campaign_start enqueues Celery tasks on commit; in this mode the benchmark drives
        # the send loop itself, so it asks for none.
        settings.MAILCENTER_SEND_CONCURRENCY = 0

    sink: Sink | None = None
    workers: benchworkers.Workers | None = None
    exit_code = 0
    result: dict[str, object] = {}
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        print(f"database: fresh {db_kind} ({time.perf_counter() - t0:.1f}s to migrate)")

        sink = start_sink(tmpdir)
        print(f"sink: {sink.kind} on 127.0.0.1:{sink.port}")

        t0 = time.perf_counter()
        campaign_id = create_fixtures(args.recipients, sink.port)
        dkim_algorithm = DKIM_ALGORITHMS[args.dkim]
        dkim_key = create_dkim_key(dkim_algorithm)
        html_size = len(Campaign.objects.get(pk=campaign_id).html.encode())
        print(
            f"fixtures: {args.recipients} contacts, campaign HTML {html_size / 1024:.1f} KiB "
            f"({time.perf_counter() - t0:.1f}s)"
        )
        if dkim_key is not None:
            print(
                f"DKIM: {dkim_algorithm}, d={FROM_DOMAIN} s={dkim_key.selector} "
                "(generated now; every message is signed in the send loop)"
            )

        # --- the ceiling, before ---------------------------------------------------------
        # Measured before and after the pipeline, and averaged: on a shared machine the
        # load moves in the minutes between, and one reading would make the ratio a toss.
        sink_pids = [sink.proc.pid] if sink.proc is not None else []
        ceiling_n = min(args.recipients, CEILING_MAX)
        raw = sample_raw_unsent(campaign_id, args.recipients)
        print(f"\nceiling: plain smtplib, one pre-built {len(raw) / 1024:.1f} KiB message")
        ceiling_before, _cpu = measure_ceiling(
            sink, sink_pids, raw, ceiling_n, args.connections, deadline
        )
        sink_base = sink.received() or 0

        # --- the pipeline ----------------------------------------------------------------
        print(f"\nmode: {mode} ({why})")
        sink_cpu, pg_cpu = benchworkers.CpuMeter(), benchworkers.CpuMeter()
        if mode == "celery":
            workers = workers_start(args.connections, tmpdir)
            workers.mark()
            pg_cpu.sample(pg_backend_pids())
            pg_cpu.mark()
        sink_cpu.sample(sink_pids)
        sink_cpu.mark()
        own_cpu = benchworkers.own_cpu_seconds()
        load_before = os.getloadavg()
        t_start = time.perf_counter()
        t_start_epoch = time.time()
        services.campaign_start(campaign_id)
        start_s = time.perf_counter() - t_start
        t_send = time.perf_counter()
        own_cpu_send = benchworkers.own_cpu_seconds()
        if workers is not None:
            wait_for_campaign(campaign_id, workers, deadline, pg_cpu)
            workers.sample()
            pg_cpu.sample(pg_backend_pids())
            cpu_parts = {
                "celery pool": workers.cpu_pool.seconds(),
                "celery main": workers.cpu_main.seconds(),
                "postgresql": pg_cpu.seconds(),
            }
            last = last_sent_at(campaign_id)
            # Up to the last message recorded sent, not to when polling noticed.
            if last is not None:
                wall_s = max(last - t_start_epoch, 1e-6)
            else:
                wall_s = time.perf_counter() - t_start
            send_s = max(wall_s - start_s, 1e-6)
            rss = workers.peak_rss_mb()
            rss_note = "the largest VmHWM of one worker process: " + ", ".join(
                f"{name} {mb}" for name, mb in workers.peaks_mb().items()
            )
            workers.stop()
        else:
            run_send(campaign_id, args.connections, args.batch_size, deadline)
            send_s = time.perf_counter() - t_send
            wall_s = start_s + send_s
            rss = peak_rss_mb()
            rss_note = "this process or its largest forked sender (ru_maxrss)"
            cpu_parts = {"senders": benchworkers.own_cpu_seconds() - own_cpu_send}
        sink_cpu.sample(sink_pids)
        cpu_parts["sink"] = sink_cpu.seconds()
        start_cpu_s = own_cpu_send - own_cpu
        load_after = os.getloadavg()
        received_by_sink = sink.received()
        if received_by_sink is not None:
            received_by_sink -= sink_base

        counts = dict(
            Message.objects.filter(campaign_id=campaign_id)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        sent = counts.get(Message.Status.SENT, 0)
        campaign = Campaign.objects.get(pk=campaign_id)
        value = sent / wall_s if wall_s else 0.0
        print(
            f"\npipeline: {sent} sent in {wall_s:.2f}s over {args.connections} connection(s) "
            f"(campaign_start {start_s:.2f}s + sending {send_s:.2f}s)"
        )
        print(f"  messages by status: {json.dumps(counts, sort_keys=True)}")
        print(f"  campaign status: {campaign.status}; sink counted {received_by_sink}")
        print(
            f"  throughput: {value:.0f} msg/s end to end, "
            f"{(sent / send_s if send_s else 0):.0f} msg/s after campaign_start returned"
        )
        if sent != args.recipients or campaign.status != Campaign.Status.SENT:
            print(f"FAILED: {args.recipients - sent} message(s) not sent", file=sys.stderr)
            exit_code = 1
        if received_by_sink is not None and received_by_sink != sent:
            print(
                f"FAILED: the sink counted {received_by_sink} messages, the database {sent}",
                file=sys.stderr,
            )
            exit_code = 1

        # --- the ceiling, after ----------------------------------------------------------
        raw = sample_raw(campaign_id)
        verdict = check_signature(raw, dkim_key)
        print(f"\nsample message: {len(raw) / 1024:.1f} KiB, signature {verdict}")
        print(f"ceiling again, with this message ({len(raw) / 1024:.1f} KiB):")
        ceiling_after, ceiling_cpu = measure_ceiling(
            sink, sink_pids, raw, ceiling_n, args.connections, deadline + 60
        )
        load_ceiling = os.getloadavg()
        ceiling = (ceiling_before + ceiling_after) / 2
        print(f"  ceiling: {ceiling:.0f} msg/s, the mean of the two")

        # --- where the time goes ---------------------------------------------------------
        costs = stage_costs(campaign_id)
        per_message = args.connections / value if value else 0.0
        smtp_cost = args.connections / ceiling if ceiling else 0.0
        send_cost = max(per_message - costs["render"] - costs["mime"] - costs["sign"], 0.0)
        print(
            f"\ncost per message (render, MIME and sign timed over {costs['sample']} recipients):"
        )
        print(f"  compile   {costs['compile'] * 1e3:9.1f} ms once per campaign (per worker)")
        print(f"  render    {us(costs['render'])}")
        print(f"  MIME      {us(costs['mime'])}")
        if dkim_key is None:
            print("  sign            n/a  (--dkim none: no key, messages go out unsigned)")
        else:
            print(f"  sign      {us(costs['sign'])}  ({dkim_algorithm}, relaxed/relaxed)")
        print(
            f"  send      {us(send_cost)}  (derived: {args.connections}/throughput - render - "
            f"MIME - sign; of which SMTP itself ≈{smtp_cost * 1e6:.0f} µs, from the ceiling; the "
            "rest is claiming, recording, task hand-over and per-batch reconnects)"
        )
        print(f"  total     {us(per_message)}  per message per connection")
        per_sent = 1e6 / max(sent, 1)
        cpu_us = {name: round(seconds * per_sent) for name, seconds in cpu_parts.items()}
        ceiling_us = {name: round(seconds * 1e6) for name, seconds in ceiling_cpu.items()}
        print(
            "\nCPU per message (µs of CPU time, summed over processes; steadier than msg/s on "
            "a shared machine):"
        )
        print(
            "  pipeline  "
            + ", ".join(f"{name} {us}" for name, us in cpu_us.items())
            + f"; total {sum(cpu_us.values())}"
            + f" (plus campaign_start {start_cpu_s * per_sent:.0f} in this process)"
        )
        print(
            "  ceiling   "
            + ", ".join(f"{name} {us}" for name, us in ceiling_us.items())
            + f"; total {sum(ceiling_us.values())}"
        )
        loads = [load_before, load_after, load_ceiling]
        print(
            "load average (1/5/15 min) before sending, after it, after the ceiling: "
            + "; ".join(" ".join(f"{x:.2f}" for x in load) for load in loads)
        )
        print(f"peak RSS: {rss} MB ({rss_note})")

        result = {
            "bench": "send_throughput",
            "value": round(value, 1),
            "unit": "msg/s",
            "ceiling": round(ceiling, 1),
            "ceiling_before": round(ceiling_before, 1),
            "ceiling_after": round(ceiling_after, 1),
            "ratio": round(value / ceiling, 3) if ceiling else None,
            "peak_rss_mb": rss,
            "dkim": dkim_algorithm or "none",
            "recipients": args.recipients,
            "connections": args.connections,
            "mode": mode,
            "cpu_us_per_msg": sum(cpu_us.values()),
            "ceiling_cpu_us_per_msg": sum(ceiling_us.values()),
            "load_1m": round(load_before[0], 2),
            "sink": sink.kind,
        }
        if time.monotonic() > deadline:
            print(f"NOTE: stopped at the {args.time_limit:.0f}s time limit", file=sys.stderr)
    finally:
        try:
            if workers is not None:
                workers.stop()
            if sink is not None:
                sink.stop()
            if mode == "celery":
                benchworkers.redis_flush(args.redis_url)
            drop_database(admin_dsn)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print(json.dumps(result))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

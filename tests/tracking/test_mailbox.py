"""The bounce mailbox: bounces, complaints and auto-replies read over IMAP from a real
Dovecot on loopback, acted on once, and moved (or deleted) only after they are recorded."""

from __future__ import annotations

import imaplib
import os
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command

from campaigns import services as campaign_services
from campaigns.models import Message
from contacts.models import Contact
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory
from tests.tracking import dovecot
from tests.tracking.test_bounces import load
from tracking import mailbox, tokens
from tracking.mailbox import MailboxError, bounce_mailbox_poll, mailbox_config, mailbox_recipients
from tracking.models import Event, InboundReceipt

DOMAIN = "bounce.test"

_MISSING = dovecot.available()


@pytest.fixture(autouse=True)
def _bounce_domain(settings):
    settings.MAILCENTER_BOUNCE_DOMAIN = DOMAIN


@pytest.fixture
def imap_server(settings):
    if _MISSING:
        if "imap" in os.environ.get("MAILCENTER_REQUIRE", "").split(","):
            # CI installed Dovecot: a skip here would hide a broken environment.
            raise pytest.UsageError(f"MAILCENTER_REQUIRE asks for the IMAP tests: {_MISSING}")
        pytest.skip(_MISSING)
    server = dovecot.PrivateDovecot().start()
    settings.MAILCENTER_BOUNCE_IMAP_CA_FILE = server.ca_file
    try:
        yield server
    finally:
        server.stop()


def url(server: dovecot.PrivateDovecot, *, scheme: str = "imaps", password: str | None = None):
    port = server.ssl_port if scheme == "imaps" else server.port
    secret = quote(dovecot.PASSWORD if password is None else password, safe="")
    return f"{scheme}://{dovecot.USER}:{secret}@localhost:{port}/INBOX"


def client(server: dovecot.PrivateDovecot) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context(cafile=server.ca_file)
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ssl_port, ssl_context=ctx)
    conn.login(dovecot.USER, dovecot.PASSWORD)
    return conn


def append(server: dovecot.PrivateDovecot, *raws: bytes) -> None:
    conn = client(server)
    try:
        for raw in raws:
            typ, data = conn.append("INBOX", None, None, raw)
            assert typ == "OK", data
    finally:
        conn.logout()


def folder(server: dovecot.PrivateDovecot, name: str) -> list[tuple[bytes, bytes]] | None:
    """(flags, message) of each message in ``name``; None when the folder does not exist."""
    conn = client(server)
    try:
        typ, _data = conn.select(f'"{name}"', readonly=True)
        if typ != "OK":
            return None
        typ, data = conn.uid("SEARCH", "ALL")
        found = []
        for uid in data[0].split():
            typ, items = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            head, body = next(i for i in items if isinstance(i, tuple))
            found.append((head, body))
        return found
    finally:
        conn.logout()


@pytest.fixture
def messages(db, django_capture_on_commit_callbacks):
    mailing_list = MailingListFactory()
    for _ in range(4):
        SubscriptionFactory(mailing_list=mailing_list)
    campaign = CampaignFactory(lists=[mailing_list])
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_start(campaign.pk)
    return list(Message.objects.filter(campaign=campaign).select_related("contact"))


def returned(name: str, message: Message) -> bytes:
    return load(name, tokens.make_token("bounce", message.pk), message.email)


def status(message: Message) -> str:
    return Contact.objects.get(pk=message.contact_id).status


def forwarded_complaint(message: Message) -> bytes:
    """An ARF report sent to a feedback-loop address rather than to the VERP one: only
    the return path in the quoted original names the message."""
    token = tokens.make_token("bounce", message.pk)
    raw = returned("arf_complaint.eml", message)
    return raw.replace(f"To: bounces+{token}@{DOMAIN}".encode(), b"To: fbl@sender.test", 1)


def test_mailbox_config_reads_the_url_and_decodes_the_password():
    config = mailbox_config("imaps://me%40example.org:p%40ss%20word@mail.example.org/Bounces")
    assert (config.host, config.port, config.tls) == ("mail.example.org", 993, "tls")
    assert (config.user, config.password, config.folder) == (
        "me@example.org",
        "p@ss word",
        "Bounces",
    )
    assert "p@ss" not in repr(config)
    plain = mailbox_config("imap://u:p@mail.example.org")
    assert (plain.port, plain.tls, plain.folder) == (143, "starttls", "INBOX")
    assert mailbox_config("imap://u:p@127.0.0.1:1143/?tls=none").tls == "none"
    for bad in ("pop3://u:p@h/", "imaps://mail.example.org/", "imaps://u:p@h:port/"):
        with pytest.raises(MailboxError):
            mailbox_config(bad)


def test_recipients_come_from_delivery_headers_then_the_quoted_return_path(messages):
    message = messages[0]
    verp = f"bounces+{tokens.make_token('bounce', message.pk)}@{DOMAIN}"
    raw = (
        b"Delivered-To: " + verp.encode() + b"\r\n" + returned("postfix_user_unknown.eml", message)
    )
    assert mailbox_recipients(raw) == [verp]  # Delivered-To and To name it once
    assert mailbox_recipients(forwarded_complaint(message)) == [verp]
    assert mailbox_recipients(b"From: a@b.test\r\nTo: c@d.test\r\n\r\nhello\r\n") == []


def test_poll_records_each_report_once_and_moves_it(imap_server, messages):
    hard, complained, soft, vacation = messages
    stranger = b"From: someone@else.test\r\nTo: fbl@sender.test\r\nSubject: hi\r\n\r\nhello\r\n"
    append(
        imap_server,
        returned("postfix_user_unknown.eml", hard),
        forwarded_complaint(complained),
        returned("postfix_delayed.eml", soft),
        returned("vacation_autoreply.eml", vacation),
        stranger,
    )

    result = bounce_mailbox_poll(url(imap_server))

    assert (result.processed, result.duplicates, result.failed) == (5, 0, 0)
    bounce = Event.objects.get(kind="bounce", severity="hard")
    assert (bounce.message_id, bounce.status_code) == (hard.pk, "5.1.1")
    assert Event.objects.get(kind="complaint").message_id == complained.pk
    assert Event.objects.get(kind="bounce", severity="soft").message_id == soft.pk
    assert Event.objects.count() == 3  # the auto-reply and the stranger record nothing
    assert [status(m) for m in messages] == ["bounced", "complained", "active", "active"]
    assert folder(imap_server, "INBOX") == []
    moved = folder(imap_server, "Processed")
    assert len(moved) == 5
    assert all(b"\\Seen" in flags for flags, _body in moved)

    # The operator drags everything back into the inbox: nothing is recorded twice.
    conn = client(imap_server)
    conn.select('"Processed"')
    conn.uid("MOVE", "1:*", "INBOX")
    conn.logout()
    again = bounce_mailbox_poll(url(imap_server))
    assert (again.processed, again.duplicates) == (0, 5)
    assert Event.objects.count() == 3
    assert len(folder(imap_server, "Processed")) == 5


def test_a_crash_before_the_move_leaves_mail_that_is_then_moved_not_recounted(
    imap_server, messages, monkeypatch
):
    append(imap_server, returned("postfix_user_unknown.eml", messages[0]))
    real_done = mailbox._done

    def lost_connection(*args, **kwargs):
        raise OSError("connection reset by peer")

    monkeypatch.setattr(mailbox, "_done", lost_connection)
    with pytest.raises(MailboxError, match="was lost"):
        bounce_mailbox_poll(url(imap_server))
    assert Event.objects.filter(kind="bounce").count() == 1
    assert len(folder(imap_server, "INBOX")) == 1  # recorded, not yet moved

    monkeypatch.setattr(mailbox, "_done", real_done)
    result = bounce_mailbox_poll(url(imap_server))
    assert (result.processed, result.duplicates) == (0, 1)
    assert Event.objects.filter(kind="bounce").count() == 1
    assert folder(imap_server, "INBOX") == []
    assert InboundReceipt.objects.count() == 1


def test_starttls_and_delete(imap_server, messages, settings):
    settings.MAILCENTER_BOUNCE_IMAP_ACTION = "delete"
    append(
        imap_server,
        returned("postfix_user_unknown.eml", messages[0]),
        returned("exim_mailbox_full.eml", messages[1]),
    )
    result = bounce_mailbox_poll(url(imap_server, scheme="imap"))
    assert result.processed == 2
    assert Event.objects.filter(kind="bounce").count() == 2
    assert folder(imap_server, "INBOX") == []
    assert folder(imap_server, "Processed") is None  # deleted, not moved


def test_batches_bound_a_pass(imap_server, messages, settings):
    settings.MAILCENTER_BOUNCE_IMAP_BATCH = 1
    append(imap_server, *(returned("postfix_user_unknown.eml", m) for m in messages[:1]))
    append(imap_server, returned("exim_mailbox_full.eml", messages[1]))
    append(imap_server, returned("postfix_delayed.eml", messages[2]))
    first = bounce_mailbox_poll(url(imap_server), max_messages=2)
    assert first.processed == 2
    assert len(folder(imap_server, "INBOX")) == 1
    assert bounce_mailbox_poll(url(imap_server)).processed == 1
    assert Event.objects.filter(kind="bounce").count() == 3


def test_errors_are_said_in_plain_words(imap_server, db, settings):
    with pytest.raises(MailboxError, match="refused the user name or password"):
        bounce_mailbox_poll(url(imap_server, password="wrong"))
    with pytest.raises(MailboxError, match="Cannot connect"):
        bounce_mailbox_poll(f"imaps://u:p@127.0.0.1:{dovecot._free_port()}/INBOX")
    settings.MAILCENTER_BOUNCE_IMAP_CA_FILE = ""
    with pytest.raises(MailboxError, match="not trusted"):
        bounce_mailbox_poll(url(imap_server))

    settings.MAILCENTER_BOUNCE_IMAP_CA_FILE = imap_server.ca_file
    with pytest.raises(CommandError, match="refused the user name or password"):
        call_command("bounce_poll", url=url(imap_server, password="wrong"))


def test_the_command_line_shows_an_unreachable_server_without_a_traceback(tmp_path):
    port = dovecot._free_port()  # nothing listens there
    env = {**os.environ, "MAILCENTER_BOUNCE_IMAP_URL": f"imaps://u:p@127.0.0.1:{port}/INBOX"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "bounce_poll"],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, "MAILCENTER_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"Cannot connect to the IMAP server 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_bounce_poll_command_runs_one_pass(imap_server, messages, capsys):
    append(imap_server, returned("postfix_user_unknown.eml", messages[0]))
    call_command("bounce_poll", url=url(imap_server))
    assert "1 processed, 0 already recorded, 0 failed" in capsys.readouterr().out
    assert status(messages[0]) == "bounced"


def test_bounce_poll_without_a_url_says_so(db, settings):
    settings.MAILCENTER_BOUNCE_IMAP_URL = ""
    with pytest.raises(CommandError, match="MAILCENTER_BOUNCE_IMAP_URL is not set"):
        call_command("bounce_poll")


def test_the_beat_task_logs_a_failure_and_returns(db, settings, caplog):
    from tracking.tasks import bounce_mailbox_poll_task

    settings.MAILCENTER_BOUNCE_IMAP_URL = f"imaps://u:p@127.0.0.1:{dovecot._free_port()}/INBOX"
    bounce_mailbox_poll_task()
    assert "bounce mailbox: Cannot connect to the IMAP server" in caplog.text


def test_beat_polls_the_mailbox_only_when_a_url_is_set(tmp_path):
    show = "from django.conf import settings; print(sorted(settings.CELERY_BEAT_SCHEDULE))"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mailcenter.settings"}
    env["MAILCENTER_VAR_DIR"] = str(tmp_path)
    env.pop("MAILCENTER_BOUNCE_IMAP_URL", None)
    code = f"import django; django.setup(); {show}"
    without = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    env["MAILCENTER_BOUNCE_IMAP_URL"] = "imaps://u:p@mail.example.org/INBOX"
    with_url = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    assert "tracking-bounce-mailbox" not in without.stdout, without.stderr
    assert "tracking-bounce-mailbox" in with_url.stdout, with_url.stderr


def test_the_loop_keeps_polling_after_an_error_and_stops_on_sigterm(tmp_path):
    port = dovecot._free_port()
    env = {
        **os.environ,
        "MAILCENTER_BOUNCE_IMAP_URL": f"imaps://u:p@127.0.0.1:{port}/INBOX",
        "MAILCENTER_VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "bounce_poll", "--loop"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, process.kill)  # the readline below must not hang the suite
    watchdog.start()
    try:
        first = process.stderr.readline()  # the first pass failed, and said so
        assert f"Cannot connect to the IMAP server 127.0.0.1:{port}" in first
        assert process.poll() is None  # ... and the loop goes on
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        process.stderr.close()

"""OpenDKIM's verifier (``opendkim-testmsg``, Debian ``opendkim-tools``) checks our signatures.

``opendkim-testmsg`` verifies through the system resolver and has no option to take the
public key from elsewhere, so the test gives it a private network and mount namespace
(``unshare --net --mount``, root in CI): a loopback interface of its own, our DNS server on
127.0.0.1:53 there serving the test keys, and an ``/etc/resolv.conf`` naming it. Nothing
outside the namespace changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from campaigns import services
from mailcenter.domains import keys, signing
from mailcenter.domains import services as domain_services
from tests.factories import CampaignFactory, MailingListFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
TESTMSG = shutil.which("opendkim-testmsg") or "/usr/sbin/opendkim-testmsg"

# Runs inside the namespace: bring up loopback, serve the records on 127.0.0.1:53, point
# the resolver at it, verify each message; print one JSON list of (exit code, stderr).
NAMESPACE_SCRIPT = """
import json, subprocess, sys
import django
django.setup()
from tests.mailcenter.test_domains_dns import LocalDNS

records_file, resolv_file, testmsg, *messages = sys.argv[1:]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["mount", "--bind", resolv_file, "/etc/resolv.conf"], check=True)
server = LocalDNS(port=53)
server.txt.update(json.load(open(records_file)))
server.start()
results = []
for path in messages:
    with open(path, "rb") as stdin:
        done = subprocess.run([testmsg], stdin=stdin, capture_output=True, timeout=30)
    results.append((done.returncode, done.stderr.decode(errors="replace").strip()))
server.stop()
print(json.dumps(results))
"""


def _unavailable() -> str | None:
    if not os.path.exists(TESTMSG):
        return "opendkim-testmsg not installed (Debian package opendkim-tools)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (util-linux, iproute2) not installed"
    probe = subprocess.run(
        ["unshare", "--net", "--mount", "true"], capture_output=True, check=False
    )
    if probe.returncode:
        return "cannot create a network namespace here (needs root or user namespaces)"
    return None


@pytest.fixture
def opendkim_verify(tmp_path):
    """Return verify(messages, records) -> [(exit code, stderr)] from opendkim-testmsg."""
    reason = _unavailable()
    if reason:
        if "opendkim" in os.environ.get("MAILCENTER_REQUIRE", ""):
            raise pytest.UsageError(f"MAILCENTER_REQUIRE asks for the OpenDKIM test: {reason}")
        pytest.skip(reason)

    def verify(messages: list[bytes], records: dict[str, list[str]]):
        script = tmp_path / "ns.py"
        script.write_text(NAMESPACE_SCRIPT)
        (tmp_path / "records.json").write_text(json.dumps(records))
        (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2\n")
        paths = []
        for index, raw in enumerate(messages):
            path = tmp_path / f"message{index}.eml"
            path.write_bytes(raw)
            paths.append(str(path))
        # The helper only needs Django importable: its own var dir, no database.
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MAILCENTER_VAR_DIR": str(tmp_path / "var")}
        done = subprocess.run(
            ["unshare", "--net", "--mount", "--", sys.executable, str(script),
             str(tmp_path / "records.json"), str(tmp_path / "resolv.conf"), TESTMSG, *paths],
            capture_output=True, timeout=120, env=env, cwd=ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        return [tuple(item) for item in json.loads(done.stdout.decode().strip().splitlines()[-1])]

    return verify


@pytest.fixture(autouse=True)
def _fresh_signing_cache():
    signing.clear_cache()
    yield
    signing.clear_cache()


def _record(key) -> dict[str, list[str]]:
    name = keys.record_name(key.selector, key.domain.domain)
    return {name: [keys.record_value(key.algorithm, key.public_key)]}


def test_opendkim_verifies_rsa_and_ed25519_campaign_messages(
    opendkim_verify, smtp_sender, django_capture_on_commit_callbacks
):
    rsa_domain = domain_services.sending_domain_create("rsa.example")
    ed_domain = domain_services.sending_domain_create("ed.example")
    rsa = domain_services.dkim_key_generate(rsa_domain.pk, keys.RSA, "r1")
    ed = domain_services.dkim_key_generate(ed_domain.pk, keys.ED25519, "e1")
    mailing_list = MailingListFactory()
    SubscriptionFactory(mailing_list=mailing_list)
    for sender in ("news@rsa.example", "news@ed.example"):
        campaign = CampaignFactory(
            lists=[mailing_list],
            from_email=sender,
            subject="Größte Herbst-Angebote für {{ contact.first_name }} — jetzt mit Rabatt "
            "auf Jacken, Schuhe und Zubehör",
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.campaign_start(campaign.pk)
    rsa_raw, ed_raw = (r.data for r in smtp_sender.handler.received)
    assert b"a=rsa-sha256" in rsa_raw
    assert b"a=ed25519-sha256" in ed_raw
    tampered = rsa_raw.replace(b"Offer</a>", b"Offre</a>")
    results = opendkim_verify([rsa_raw, ed_raw, tampered], {**_record(rsa), **_record(ed)})
    assert results[0] == (0, ""), results[0]
    assert results[1] == (0, ""), results[1]
    assert results[2][0] != 0  # it really checks: a changed body fails

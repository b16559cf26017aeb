"""A private Dovecot IMAP server on loopback for tests: its own configuration, runtime
directory, password file, certificate and maildir under a temporary directory; nothing
of the system's Dovecot is used or changed. Needs root (Dovecot's master starts its
login and auth processes as the ``dovenull`` and ``dovecot`` users, and mail is stored
as ``nobody``).

The directory is made with tempfile rather than pytest's tmp_path because those
unprivileged processes must be able to reach it, and pytest's base directory is 0700.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "s3cret p@ss"  # a space and an @: the URL must carry it percent-encoded

CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = mailcenter-test-{port}
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}
"""


def available() -> str | None:
    """None when a private Dovecot can run here, else why not."""
    if not Path(DOVECOT).exists():
        return f"{DOVECOT} not found (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "the private Dovecot needs root"
    for user in ("dovecot", "dovenull", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no {user} user (installed with dovecot-core)"
    if not shutil.which("openssl"):
        return "no openssl to make the test certificate"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateDovecot:
    """Start with ``start()``, stop with ``stop()``; ``port`` speaks STARTTLS and
    ``ssl_port`` implicit TLS, with a self-signed certificate at ``ca_file``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailcenter-dovecot-"))
        self.dir.chmod(0o755)
        self.port = _free_port()
        self.ssl_port = _free_port()
        self.ca_file = str(self.dir / "cert.pem")
        self.process: subprocess.Popen | None = None

    def start(self) -> PrivateDovecot:
        nobody = pwd.getpwnam("nobody")
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(self.dir / "key.pem"), "-out", self.ca_file,
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (self.dir / "key.pem").chmod(0o644)
        (self.dir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        (self.dir / "passwd").chmod(0o644)
        (self.dir / "mail").mkdir()
        os.chown(self.dir / "mail", nobody.pw_uid, nobody.pw_gid)
        conf = self.dir / "dovecot.conf"
        conf.write_text(
            CONF.format(
                dir=self.dir,
                port=self.port,
                ssl_port=self.ssl_port,
                uid=nobody.pw_uid,
                gid=nobody.pw_gid,
            )
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.ssl_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("dovecot did not listen within 15 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

"""A private Postfix instance on loopback for tests: its own configuration directory,
queue, ports and logs under a temporary directory; nothing of the system's Postfix is
used or changed. Needs root (Postfix's master drops privileges to the ``postfix`` user).

It accepts mail on 127.0.0.1:<port> from loopback, relays the test domain to a given
SMTP server and the bounce domain to the bounce server, and tries each message once
(``maximal_queue_lifetime = 0``), so a 4xx or 5xx answer turns into a DSN at once.
Mail received for the ``hold`` domains waits in Postfix's hold queue until ``release()``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"

MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.sender.test
mydomain = sender.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {relay_domains}
transport_maps = texthash:{dir}/transport
smtpd_recipient_restrictions = check_recipient_access texthash:{dir}/hold,
    permit_mynetworks, reject
smtp_dns_support_level = disabled
smtp_host_lookup = native
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
smtpd_banner = $myhostname ESMTP
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
"""


def available() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not os.path.exists(POSTFIX):
        return "postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostfix:
    def __init__(self, routes: dict[str, int], hold: tuple[str, ...] = ()) -> None:
        """``routes``: domain → port of an SMTP server on 127.0.0.1 that receives it;
        ``hold``: domains whose incoming mail is held until ``release()``."""
        self.hold = hold
        # Not pytest's tmp_path: Postfix's daemons run as the postfix user and must be able
        # to reach their queue, and pytest's directories are private to root.
        self.base = Path(tempfile.mkdtemp(prefix="mailcenter-postfix-"))
        self.base.chmod(0o755)
        self.dir = self.base / "postfix"
        self.port = _free_port()
        self.routes = routes

    def start(self) -> PrivatePostfix:
        self.dir.mkdir(parents=True)
        for sub in ("queue", "data"):
            (self.dir / sub).mkdir()
        shutil.chown(self.dir / "data", "postfix", "postfix")
        (self.dir / "main.cf").write_text(
            MAIN_CF.format(dir=self.dir, relay_domains=", ".join(self.routes))
        )
        (self.dir / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        (self.dir / "transport").write_text(
            "".join(f"{domain} smtp:[127.0.0.1]:{port}\n" for domain, port in self.routes.items())
        )
        (self.dir / "hold").write_text("".join(f"{domain} HOLD\n" for domain in self.hold))
        self._postfix("start")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not start:\n{self.log()}")

    def stop(self) -> None:
        try:
            self._postfix("stop")
        except subprocess.CalledProcessError:
            pass
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def release(self) -> None:
        """Let the held mail go (``postsuper -H ALL``)."""
        subprocess.run(
            ["/usr/sbin/postsuper", "-c", str(self.dir), "-H", "ALL"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def _postfix(self, *args: str) -> None:
        subprocess.run(
            [POSTFIX, "-c", str(self.dir), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

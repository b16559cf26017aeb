"""Helpers for the crash-safety tests: a slow SMTP peer, private Redis and PostgreSQL
servers the tests may kill and restart (never the shared ones), and a bounded wait."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.smtppeers import Peer


class SlowPeer(Peer):
    data_delay = 0.05  # so that the kill lands while batches are in flight


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    every: Callable[[], object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if every:
            every()
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence (a
    kill loses every queued task, as a crash of an unpersisted broker does)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _listening(self.port), 10, "the private redis-server to listen")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb as the postgres OS user, trust auth on
    127.0.0.1, a free port), so that the test can restart it.

    Its directory is a fresh one under the system temp dir rather than pytest's
    ``tmp_path``: the postgres user must be able to reach it, and pytest's base directory
    is private to the user running the tests (opening it up would open everyone's).
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="mailcenter-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/mailcenter"

    def _as_postgres(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            command,
            check=True,
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    def init(self) -> PrivatePostgres:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._as_postgres(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start()
        self._as_postgres(
            _pg_bin("createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "mailcenter",
        )
        return self

    def start(self) -> None:
        # fsync=off survives a server crash (the OS keeps what was written); the default
        # synchronous_commit=on matters: with it off, an immediate stop loses transactions
        # already reported committed, and sent messages would be sent again.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._as_postgres(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: what a crash does to clients (every connection dropped, no
        checkpoint); the next start recovers from the WAL."""
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

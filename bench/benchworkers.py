"""Real Celery worker processes for a benchmark run: start them, wait until they take
tasks, read their peak memory, and stop them within a bounded time."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: between fork and exec only the prctl call runs.
_LIBC = ctypes.CDLL(None, use_errno=True)


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


def redis_flush(url: str) -> None:
    """Empty the Redis database of ``url``: only for a database the benchmark owns."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def die_with_parent() -> None:
    # Runs in the child between fork and exec: if the benchmark itself is killed (even
    # with SIGKILL), the kernel sends the worker SIGTERM instead of leaving it running.
    with contextlib.suppress(AttributeError):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def _vm_hwm_kib(pid: int) -> int | None:
    """The process's peak resident set size (VmHWM) in KiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # fields[0] is field 3 of proc(5), the state
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


@dataclass
class CpuMeter:
    """CPU time used by a changing set of processes since ``mark``. The latest reading of
    each process is kept, so one that has exited still counts with what it had used when
    last sampled; one first seen after the mark counts from zero."""

    seen: dict[int, float] = field(default_factory=dict)
    base: dict[int, float] = field(default_factory=dict)

    def sample(self, pids: list[int]) -> None:
        for pid in pids:
            used = cpu_seconds(pid)
            if used is not None:
                self.seen[pid] = used

    def mark(self) -> None:
        self.base = dict(self.seen)

    def seconds(self) -> float:
        return sum(used - self.base.get(pid, 0.0) for pid, used in self.seen.items())


def own_cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Workers:
    """One ``celery worker`` (prefork) process and its pool, started by ``start``."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    hostname: str
    peak_kib: dict[int, int] = field(default_factory=dict)
    cpu_main: CpuMeter = field(default_factory=CpuMeter)
    cpu_pool: CpuMeter = field(default_factory=CpuMeter)

    def sample(self) -> None:
        """Record the peak RSS and the CPU time of the worker and of each pool process now
        alive. VmHWM is the kernel's own high-water mark, so sampling only has to catch
        each process once before it exits (pool processes live as long as the worker)."""
        pool = _children(self.proc.pid)
        for pid in [self.proc.pid, *pool]:
            hwm = _vm_hwm_kib(pid)
            if hwm is not None:
                self.peak_kib[pid] = max(hwm, self.peak_kib.get(pid, 0))
        self.cpu_main.sample([self.proc.pid])
        self.cpu_pool.sample(pool)

    def mark(self) -> None:
        """Start counting CPU time from now (not the worker's start-up)."""
        self.sample()
        self.cpu_main.mark()
        self.cpu_pool.mark()

    def pool_size(self) -> int:
        return len(_children(self.proc.pid))

    def peak_rss_mb(self) -> float:
        """The highest peak RSS of any one worker process (parent or pool child)."""
        return round(max(self.peak_kib.values(), default=0) / 1024, 1)

    def peaks_mb(self) -> dict[str, float]:
        return {
            ("main" if pid == self.proc.pid else f"pool {pid}"): round(kib / 1024, 1)
            for pid, kib in sorted(self.peak_kib.items())
        }

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """Warm shutdown (SIGTERM: finish the tasks in hand), then SIGKILL the process group
        after ``timeout`` seconds."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        # Pool processes left behind (a killed parent) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def start(root: Path, env: dict[str, str], concurrency: int, log_path: Path, name: str) -> Workers:
    """Start ``celery -A mailcenter worker`` with a prefork pool of ``concurrency``
    processes, in its own process group, its output going to ``log_path``."""
    hostname = f"{name}-{os.getpid()}@{socket.gethostname()}"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "mailcenter",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        hostname,
        "--loglevel",
        "warning",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return Workers(proc, log_path, hostname)


def wait_ready(workers: Workers, app: Any, concurrency: int, timeout: float = 90) -> float:
    """Wait until the worker answers a ping and its whole pool is forked; return seconds."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not workers.alive():
            raise RuntimeError(f"the Celery worker exited:\n{workers.output_tail()}")
        replies = app.control.ping(destination=[workers.hostname], timeout=0.5)
        if replies and workers.pool_size() >= concurrency:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(
        f"the Celery worker was not ready after {timeout:.0f}s:\n{workers.output_tail()}"
    )

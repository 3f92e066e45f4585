"""Real processes for the fault tests: a private redis-server, a private
PostgreSQL cluster and ``worker.py`` processes, all started (and stopped,
killed, paused, restarted) by the test itself.

The shared servers (5432, 6379) are never touched: a test that flushes or
restarts a server must own it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PG = Path("/usr/lib/postgresql")


def find_pg_bin(debian_root: Path = DEBIAN_PG) -> Path | None:
    """The directory of the installed PostgreSQL's ``initdb``, whatever its
    version: ``PG_BIN``, else ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/<N>/bin`` (Debian), else ``initdb`` on PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip()))
    versions = [path for path in debian_root.glob("*/bin") if path.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda path: int(path.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    return next((path for path in candidates if (path / "initdb").exists()), None)


PG_BIN = find_pg_bin()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """Terminate ``proc`` if it still runs; kill it after ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(predicate, timeout: float = 30.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


class RedisServer:
    """``redis-server`` on a free port, without persistence: a restart
    comes back empty, like a flush plus dropped connections."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1"):
        self.host = host
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def url(self, number: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{number}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                self.host,
                # Bound to a private address for clients on other hosts
                # (network namespaces), which protected mode would refuse.
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self.ping, 20), "private redis-server did not start"

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class PostgresCluster:
    """A throwaway PostgreSQL 15 cluster (initdb in a temp dir, pg_ctl on a
    free port, run as the postgres user), tuned for speed, not safety."""

    SETTINGS = {
        "listen_addresses": "'127.0.0.1'",
        # fsync off is safe for a crash of PostgreSQL alone (the OS keeps the
        # pages); synchronous_commit stays on: "immediate" restarts must not
        # lose commits already acknowledged.
        "fsync": "off",
        "full_page_writes": "off",
        "shared_buffers": "32MB",
        "max_connections": "100",
        "log_min_messages": "warning",
    }

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and PG_BIN is not None

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}\n{done.stderr}\n{self.server_log()}")

    def server_log(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        lines = [f"{key} = {value}" for key, value in self.SETTINGS.items()]
        lines += [f"port = {self.port}", f"unix_socket_directories = '{self.dir}'"]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n".join(lines) + "\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # already down
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Workers:
    """``worker.py`` processes sharing one environment; their stderr goes to
    one log file that a failing test prints."""

    def __init__(self, env: dict, log: Path):
        self.env = env
        self.log = log
        self.procs: list[subprocess.Popen] = []
        self.born: dict[int, float] = {}
        self.serving_since: dict[int, float] = {}

    def spawn(self, count: int = 1, *args: str, **env) -> list[subprocess.Popen]:
        return self.spawn_command([str(ROOT / "worker.py"), *args], count, **env)

    def spawn_command(self, argv: list[str], count: int = 1, **env) -> list[subprocess.Popen]:
        """``python argv...`` as workers (a test's own entry point, e.g.
        ``["-m", "tests.faults.hog_worker"]``)."""
        environment = {**os.environ, **self.env, **{k: str(v) for k, v in env.items()}}
        started = []
        for _ in range(count):
            with open(self.log, "a") as log:
                proc = subprocess.Popen(
                    [sys.executable, *argv],
                    cwd=ROOT,
                    env=environment,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            self.born[proc.pid] = time.monotonic()
            started.append(proc)
        self.procs.extend(started)
        return started

    def alive(self) -> list[subprocess.Popen]:
        return [proc for proc in self.procs if proc.poll() is None]

    def age(self, proc: subprocess.Popen) -> float:
        return time.monotonic() - self.born[proc.pid]

    def serving(self, redis) -> list[subprocess.Popen]:
        """Live workers that have registered with RQ (app imported, queues
        listened to): killing one of these hits real work."""
        from rq import Worker

        registered = {worker.pid for worker in Worker.all(connection=redis)}
        moment = time.monotonic()
        alive = self.alive()
        for proc in alive:
            if proc.pid in registered:
                self.serving_since.setdefault(proc.pid, moment)
        return [proc for proc in alive if proc.pid in self.serving_since]

    def serving_for(self, proc: subprocess.Popen) -> float:
        return time.monotonic() - self.serving_since.get(proc.pid, time.monotonic())

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log.read_text()[-chars:]
        except OSError:
            return ""

    def stop_all(self) -> None:
        for proc in self.alive():
            try:
                proc.send_signal(signal.SIGCONT)  # a paused worker cannot stop
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

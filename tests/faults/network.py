"""Separate "hosts" on one machine for the multi-host fault test: network
namespaces on a bridge, and a PgBouncer configured like
``deploy/pgbouncer/pgbouncer.ini``.

Each host is a network namespace (``ip netns``) with a veth pair whose
outer end is a port of a bridge in the root namespace. The bridge has
``GATEWAY``; host ``n`` has ``10.200.0.n``. A host reaches nothing but the
bridge: its 127.0.0.1 is its own, so PostgreSQL (through PgBouncer) and
Redis are reachable only over that network, on the bridge address.
Cutting a host off is downing its veth end inside its namespace; healing
is bringing it up again.

Every name starts with ``PREFIX``, so that leftovers of an earlier run that
died can be found and removed before a run and after it. The names and
addresses are the machine's, not the test run's: a lock file makes a
second run on the machine wait for the first, rather than remove its
network under it.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.procs import ROOT, free_port, stop_process, wait_until

PREFIX = "mh"
BRIDGE = f"{PREFIX}br0"
SUBNET = "10.200.0"
GATEWAY = f"{SUBNET}.1"
INNER = "veth-in"  # the host's end of its veth pair, inside its namespace
DEPLOY_PGBOUNCER = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def available() -> str | None:
    """Why this machine cannot run separate hosts, or None when it can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's ip for network namespaces"
    if shutil.which("pgbouncer") is None:
        return "needs pgbouncer (apt-get install pgbouncer; .ci/run installs it)"
    return None


class Host:
    """One network namespace on the bridge, at ``address``."""

    def __init__(self, name: str, number: int):
        self.name = f"{PREFIX}-{name}"
        self.address = f"{SUBNET}.{number}"
        self.outer = f"{PREFIX}v-{name}"[:15]  # interface names hold 15 characters

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.outer, "type", "veth", "peer", "name", f"{self.outer}i")
        ip("link", "set", f"{self.outer}i", "netns", self.name)
        ip("link", "set", self.outer, "master", BRIDGE)
        ip("link", "set", self.outer, "up")
        self.run("ip", "link", "set", f"{self.outer}i", "name", INNER)
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", INNER)
        self.run("ip", "link", "set", "lo", "up")
        self.heal()

    def command(self, *args: str) -> list[str]:
        """``args`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str) -> None:
        done = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)}: {done.stderr.strip()}")

    def cut(self) -> None:
        """Off the network: nothing goes in or out until :meth:`heal`."""
        self.run("ip", "link", "set", "dev", INNER, "down")

    def heal(self) -> None:
        self.run("ip", "link", "set", "dev", INNER, "up")


class Network:
    """The bridge and the hosts on it."""

    LOCK = Path(tempfile.gettempdir()) / f"faults-{PREFIX}-network.lock"

    def __init__(self, names: list[str]):
        self.hosts = {name: Host(name, 11 + i) for i, name in enumerate(names)}
        self.lock = None

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self, wait: float = 900) -> None:
        self.lock = open(self.LOCK, "w")  # noqa: SIM115 - held until destroy()
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another run holds {self.LOCK}") from None
                time.sleep(1)
        remove_leftovers()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            host.create()

    def destroy(self) -> None:
        if self.lock is None:
            return
        try:
            remove_leftovers()
        finally:
            self.lock.close()  # releases the lock
            self.lock = None


def remove_leftovers() -> None:
    """Kill whatever still runs in our namespaces, delete them and the
    bridge (a run killed halfway leaves them behind)."""
    names = [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]
    ours = [name for name in names if name.startswith(f"{PREFIX}-")]
    for name in ours:
        pids = ip("netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        wait_until(lambda n=name: not ip("netns", "pids", n, check=False).stdout.strip(), 10)
        ip("netns", "delete", name, check=False)
    links = ip("-o", "link", "show").stdout.splitlines()
    for line in links:
        link = line.split(":")[1].strip().split("@")[0]
        if link.startswith(f"{PREFIX}v-") or link == BRIDGE:
            ip("link", "delete", link, check=False)


class PgBouncer:
    """PgBouncer in the root namespace, on the bridge address, with the
    pools of ``deploy/pgbouncer/pgbouncer.ini``: only the PostgreSQL
    address, the listening address and the authentication differ (trust,
    the test cluster's ``postgres`` user)."""

    def __init__(self, pg_port: int, database: str, listen: str = GATEWAY):
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pgbouncer-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.listen = listen
        self.pg_port = pg_port
        self.database = database
        self.proc: subprocess.Popen | None = None
        self.config = self.dir / "pgbouncer.ini"

    def settings(self) -> configparser.ConfigParser:
        deployed = configparser.ConfigParser(interpolation=None)
        deployed.read(DEPLOY_PGBOUNCER)
        for name, spec in deployed["databases"].items():
            entry = dict(part.split("=", 1) for part in spec.split())
            entry.update(host="127.0.0.1", port=str(self.pg_port), dbname=self.database)
            deployed["databases"][name] = " ".join(f"{k}={v}" for k, v in entry.items())
        userlist = self.dir / "userlist.txt"
        userlist.write_text('"postgres" ""\n')
        deployed["pgbouncer"].update(
            listen_addr=self.listen,
            listen_port=str(self.port),
            auth_type="trust",
            auth_file=str(userlist),
            unix_socket_dir="",
            logfile=str(self.dir / "pgbouncer.log"),
            pidfile=str(self.dir / "pgbouncer.pid"),
        )
        return deployed

    def url(self, entry: str) -> str:
        return f"postgresql+psycopg://postgres@{self.listen}:{self.port}/{entry}"

    def start(self) -> None:
        with open(self.config, "w") as out:
            self.settings().write(out)
        for path in self.dir.iterdir():
            shutil.chown(path, "postgres", "postgres")
        self.proc = subprocess.Popen(
            ["pgbouncer", "-u", "postgres", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self.listening, 20), f"pgbouncer did not start: {self.log_tail()}"

    def listening(self) -> bool:
        import socket

        try:
            with socket.create_connection((self.listen, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return (self.dir / "pgbouncer.log").read_text()[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

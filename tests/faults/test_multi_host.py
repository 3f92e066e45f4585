"""Two web processes and four worker hosts, each a network namespace of its
own that reaches PostgreSQL (through PgBouncer, configured as in
``deploy/pgbouncer/pgbouncer.ini``) and Redis only over the network, with
nothing but the code and its environment (issue 20; docs/OPERATIONS.md
"Processes"). 2,000 executions with an e-mail and a webhook each are pushed
through both web processes' API; mid-run one worker host is killed, one
loses power (off the network before its processes die: nobody hears of
it), and another is cut off from PostgreSQL, Redis and the receivers for
30 s and healed.
Every contact gets each message once (docs/CONTRACT.md "exactly once in
effect"): the only repeats are a message in flight at a death or at the
cut, with the same Message-ID / Idempotency-Key."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path

import httpx
import pytest
from redis import Redis
from sqlalchemy.engine import make_url

from app.extensions import db
from tests.conftest import ARTIFACTS
from tests.delivery.conftest import Receiver, _Controller
from tests.engine.helpers import make_contacts
from tests.factories import make_firm, make_user, make_workflow
from tests.faults import network
from tests.faults.checks import (
    emails,
    flow_state_counts,
    lease_holders,
    outbox_ids,
    outbox_statuses,
    repeats_without_a_kill,
    scores,
    settle,
    statuses,
    webhooks,
)
from tests.faults.conftest import Stamped, TimedInbox
from tests.faults.network import GATEWAY, Network, PgBouncer
from tests.faults.procs import ROOT, RedisServer, wait_until

pytestmark = [pytest.mark.slow]

CONTACTS = 2000
WORKER_HOSTS = ["w1", "w2", "w3", "w4"]
WEB_HOSTS = ["web1", "web2"]
WEB_PORT = 8000
CUT_SECONDS = 30
EVENT_BATCH = 100
STEPS = 3
# A killed or cut-off worker's claimed batch is taken over after this.
LEASE_SECONDS = 5
BATCH_SIZE = 50
WORKER_LOG = "test_multi_host"


@dataclass
class HostProcesses:
    """The processes of one host, in one process group: killing the host
    is killing the group."""

    host: network.Host
    procs: list[subprocess.Popen] = field(default_factory=list)
    home: Path | None = None

    @property
    def pids(self) -> set[int]:
        return {proc.pid for proc in self.procs}

    def spawn(self, command: list[str], env: dict, log: Path) -> subprocess.Popen:
        group = self.procs[0].pid if self.procs else 0
        with open(log, "a") as out:
            proc = subprocess.Popen(
                self.host.command(*command),
                cwd=self.home,
                env=env,
                stdout=out,
                stderr=out,
                process_group=group,
            )
        self.procs.append(proc)
        return proc

    def kill(self) -> None:
        if self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[0].pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=10)

    def power_off(self) -> None:
        """Gone at once, telling no one: off the network, then killed."""
        self.host.cut()
        self.kill()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)


@dataclass
class Stack:
    app: object
    firm: object
    user: object
    net: Network
    redis: Redis
    bouncer: PgBouncer
    smtp: TimedInbox
    hooks: Receiver
    hosts: dict[str, HostProcesses]
    webs: list[str]
    token: str
    logs: Path


@pytest.fixture
def separate_hosts():
    reason = network.available()
    if reason:
        pytest.skip(reason)


def _instance_files() -> dict[str, int]:
    folder = ROOT / "instance"
    if not folder.is_dir():
        return {}
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}


@pytest.fixture
def stack(separate_hosts, pg_cluster, fault_db, tmp_path):
    """The network, PgBouncer, a Redis and the receivers on the bridge, the
    test's own app on the database (to set up and check), two web hosts
    and four worker hosts (a worker and a delivery worker each, as in
    deploy/docker-compose.yml)."""
    from app import create_app
    from app.models import ApiToken
    from app.tenancy import firm_context

    net = Network([*WORKER_HOSTS, *WEB_HOSTS])
    logs = ARTIFACTS / "faults" / WORKER_LOG
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.iterdir():
        old.unlink()
    hosts: dict[str, HostProcesses] = {}
    cleanups = []
    try:
        cleanups.append(net.destroy)
        net.create()
        redis_server = RedisServer(tmp_path, host=GATEWAY)
        redis_server.start()
        cleanups.append(redis_server.stop)
        bouncer = PgBouncer(pg_cluster.port, make_url(fault_db).database)
        bouncer.start()
        cleanups.append(bouncer.destroy)
        cleanups.append(lambda: (logs / "pgbouncer.log").write_text(bouncer.log_tail(200_000)))
        inbox = TimedInbox()
        controller = _Controller(inbox, hostname=GATEWAY, port=0)
        controller.start()
        cleanups.append(controller.stop)
        hooks = Receiver(host=GATEWAY)
        hooks.requests = Stamped()
        cleanups.append(hooks.close)

        secret = secrets.token_urlsafe(32)
        web_urls = [f"http://{net[name].address}:{WEB_PORT}" for name in WEB_HOSTS]
        application = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": secret,
                "SQLALCHEMY_DATABASE_URI": fault_db,
                "REDIS_URL": redis_server.url(),
                "BASE_URL": web_urls[0],
                "SMTP_HOST": GATEWAY,
                "SMTP_PORT": controller.port,
                "WEBHOOK_ALLOW_PRIVATE": True,
                "RATELIMIT_ENABLED": False,
                "INLINE_SCHEDULER": False,
                "SERVER_NAME": None,
            }
        )
        ctx = application.app_context()
        ctx.push()
        cleanups.append(lambda: (db.session.remove(), ctx.pop(), _dispose(application)))
        db.create_all()
        firm = make_firm("Acme")
        user = make_user(firm, "alice@acme.test", role="admin")
        with firm_context(firm.id):
            _, token = ApiToken.issue(user, name="multi-host")
            db.session.commit()

        # Only what a fresh host has: the code, and its environment.
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "SECRET_KEY": secret,
            "DB_PGBOUNCER": "true",
            "DB_POOL_SIZE": "4",
            "REDIS_URL": redis_server.url(),
            "BASE_URL": web_urls[0],
            "SMTP_HOST": GATEWAY,
            "SMTP_PORT": str(controller.port),
            "SMTP_STARTTLS": "0",
            "WEBHOOK_ALLOW_PRIVATE": "1",
            "RATELIMIT_ENABLED": "0",
            "SWEEP_INTERVAL_SECONDS": "0.5",
            "ENGINE_LEASE_SECONDS": str(LEASE_SECONDS),
            "ENGINE_BATCH_SIZE": str(BATCH_SIZE),
            "ENGINE_MAX_BATCH_SIZE": str(BATCH_SIZE * 4),
            "WORKER_BEAT_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
        transaction, session = bouncer.url("automation"), bouncer.url("automation_session")
        cleanups.append(lambda: [h.stop() for h in hosts.values()])
        for name in WEB_HOSTS + WORKER_HOSTS:
            home = tmp_path / f"home-{name}"
            home.mkdir()
            hosts[name] = HostProcesses(net[name], home=home)
        for name in WEB_HOSTS:
            env = {**base_env, "HOME": str(hosts[name].home), "DATABASE_URL": transaction}
            hosts[name].spawn(_web_command(net[name].address), env, logs / f"{name}.log")
        for name in WORKER_HOSTS:
            host, home = hosts[name], str(hosts[name].home)
            worker = [sys.executable, str(ROOT / "worker.py"), "--queues", "engine,default"]
            host.spawn(worker, {**base_env, "HOME": home, "DATABASE_URL": transaction},
                       logs / f"{name}.log")  # fmt: skip
            delivery = [sys.executable, str(ROOT / "worker.py"), "--queues", "delivery",
                        "--no-scheduler"]  # fmt: skip
            host.spawn(delivery, {**base_env, "HOME": home, "DATABASE_URL": session},
                       logs / f"{name}.log")  # fmt: skip

        connection = Redis.from_url(redis_server.url())
        stack = Stack(application, firm, user, net, connection, bouncer, inbox, hooks, hosts,
                      web_urls, token, logs)  # fmt: skip
        expected = set().union(*(hosts[name].pids for name in WORKER_HOSTS))
        ready = wait_until(lambda: _rq_pids(connection) >= expected, 180, 0.5) and wait_until(
            lambda: all(_healthy(url) for url in web_urls), 60, 0.5
        )
        assert ready, (_rq_pids(connection), expected, _tails(logs))
        yield stack
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep cleaning: the network above all
                print(f"cleanup failed: {exc!r}")


def _dispose(application) -> None:
    with application.app_context():
        db.engine.dispose()


def _web_command(address: str) -> list[str]:
    """gunicorn with deploy/gunicorn.conf.py when installed, else Flask's
    threaded server (the environment reaches either the same way)."""
    if importlib.util.find_spec("gunicorn") is not None:
        return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                "--bind", f"{address}:{WEB_PORT}", "--workers", "1", "app:create_app()"]  # fmt: skip
    return [sys.executable, "-m", "flask", "--app", "app:create_app()", "run", "--host", address,
            "--port", str(WEB_PORT), "--with-threads", "--no-reload", "--no-debugger"]  # fmt: skip


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _rq_pids(connection: Redis) -> set[int]:
    from rq import Worker

    try:
        return {worker.pid for worker in Worker.all(connection=connection)}
    except Exception:
        return set()


def _busy(connection: Redis, pids: set[int]) -> bool:
    """A worker of ``pids`` is running a job or holds a claimed batch."""
    from rq import Worker

    for worker in Worker.all(connection=connection):
        if worker.pid in pids and worker.get_state() == "busy":
            return True
    return bool(lease_holders() & pids)


def _tails(logs: Path, chars: int = 3000) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-chars:]}" for p in sorted(logs.glob("*.log")))


def _beats_since(stack: Stack, pids: set[int], moment: datetime) -> set[int]:
    """Pids of ``pids`` whose heartbeat (app/automation/operations/workers.py)
    came after ``moment``."""
    beats = stack.redis.hgetall("automation:workers:beats")
    fresh = set()
    for raw in beats.values():
        entry = json.loads(raw)
        if entry["pid"] in pids and datetime.fromisoformat(entry["at"]) > moment:
            fresh.add(entry["pid"])
    return fresh


def _workflow(stack: Stack):
    from app.automation.lifecycle.publishing import activate_workflow
    from app.tenancy import firm_context
    from tests.engine.helpers import chain

    nodes, edges = chain(
        ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello"}),
        (
            "hook",
            "webhook",
            {"url": stack.hooks.url + "/crm", "payload": {"contact": "{{ contact.email }}"}},
        ),
        # Not idempotent: a step run twice would leave a score of 20.
        ("score", "update_contact", {"fields": {"score": "+10"}}),
    )
    workflow = make_workflow(
        stack.firm,
        name="Visited pricing",
        nodes=nodes,
        edges=edges,
        triggers=[{"trigger_type": "page_visited", "configuration": {}}],
    )
    with firm_context(stack.firm.id):
        activate_workflow(workflow, stack.user)
        db.session.commit()
    return workflow


def _post_events(stack: Stack, contacts: list) -> list[int]:
    """Page visits for ``contacts``, in batches of EVENT_BATCH, half through
    each web host; returns the executions started."""
    headers = {"Authorization": f"Bearer {stack.token}"}
    batches = [contacts[i : i + EVENT_BATCH] for i in range(0, len(contacts), EVENT_BATCH)]

    def post(numbered):
        number, batch = numbered
        body = [
            {
                "type": "page_visited",
                "contact_id": contact.id,
                "data": {"url": "https://acme.test/pricing"},
                "event_id": f"visit-{contact.id}",
            }
            for contact in batch
        ]
        url = stack.webs[number % len(stack.webs)]
        with httpx.Client(timeout=120, trust_env=False) as client:
            answer = client.post(f"{url}/api/v1/events/", json=body, headers=headers)
        assert answer.status_code == 200, answer.text[:2000]
        results = answer.json()["results"]
        assert [r["status"] for r in results] == [202] * len(batch), results[:3]
        return [e for r in results for e in r["executions"]]

    with ThreadPoolExecutor(len(stack.webs)) as pool:
        return [e for started in pool.map(post, enumerate(batches)) for e in started]


def _addresses() -> set[str]:
    from sqlalchemy import select

    from app.models import Contact

    stmt = select(Contact.email).execution_options(all_firms=True)
    return set(db.session.execute(stmt).scalars())


def _inherited_advisory_locks(bouncer: PgBouncer, clients: int = 5) -> int:
    """Advisory locks that new clients of the session-pooled entry hold the
    moment they connect: left by a client before them on the same server
    connection (PgBouncer hands out its idle server connections first)."""
    import psycopg

    held, connections = 0, []
    try:
        for _ in range(clients):
            connection = psycopg.connect(
                host=bouncer.listen,
                port=bouncer.port,
                user="postgres",
                dbname="automation_session",
                autocommit=True,
                prepare_threshold=None,
            )
            connections.append(connection)
            held += connection.execute(
                "SELECT count(*) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            ).fetchone()[0]
    finally:
        for connection in connections:
            connection.close()
    return held


def _sent(stack: Stack) -> int:
    with stack.smtp.lock:
        return len(stack.smtp.messages)


def _say(began: float, what: str) -> None:
    print(f"[{time.monotonic() - began:6.1f}s] {what}", flush=True)


def record(figures: dict) -> None:
    print(json.dumps(figures))
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "faults-figures.jsonl", "a") as out:
        out.write(json.dumps(figures) + "\n")


@pytest.mark.timeout(600)
def test_four_worker_hosts_one_killed_one_cut_off_send_every_message_once(stack):
    instance_before = _instance_files()
    workflow = _workflow(stack)
    contacts = make_contacts(stack.firm, CONTACTS)
    addresses = _addresses()
    killed, cut, gone = stack.hosts["w1"], stack.hosts["w2"], stack.hosts["w3"]
    began = time.monotonic()
    started = []

    # A first part, and the kill of w1 while it holds work.
    first, second, third = contacts[:800], contacts[800:1600], contacts[1600:]
    started += _post_events(stack, first)
    assert wait_until(lambda: _sent(stack) >= 100, 120, 0.1), _tails(stack.logs)
    # The delivery worker mid-job: its claimed messages are locked by its
    # session (docs/OPERATIONS.md "PgBouncer"), the harder case.
    kill_hit_work = wait_until(lambda: _busy(stack.redis, {killed.procs[1].pid}), 15, 0.01)
    kill_at = time.monotonic()
    killed.kill()
    sent_at_kill = _sent(stack)
    _say(began, f"killed w1 (held work: {kill_hit_work}) after {sent_at_kill} e-mails")
    # Its session-pooled server connections went back to PgBouncer's pool:
    # a new client must not get them with the dead worker's locks.
    time.sleep(1)
    assert _inherited_advisory_locks(stack.bouncer) == 0, stack.bouncer.log_tail()

    # w3 loses power: its link goes first, so its processes' deaths reach
    # nobody (no FIN, no RST); PgBouncer's keepalives must find it gone.
    power_off_hit_work = wait_until(lambda: _busy(stack.redis, {gone.procs[1].pid}), 15, 0.01)
    power_off_at = time.monotonic()
    gone.power_off()
    _say(began, f"powered w3 off (held work: {power_off_hit_work})")

    # More, and w2 cut off from everything while it holds work, for 30 s.
    started += _post_events(stack, second)
    cut_hit_work = wait_until(lambda: _busy(stack.redis, cut.pids), 15, 0.01)
    cut_at = time.monotonic()
    sent_at_cut = _sent(stack)
    cut.host.cut()
    _say(began, f"cut w2 off (held work: {cut_hit_work}) after {sent_at_cut} e-mails")
    time.sleep(CUT_SECONDS)
    sent_during_cut = _sent(stack) - sent_at_cut
    cut.host.heal()
    _say(began, f"healed w2; {sent_during_cut} e-mails sent meanwhile")
    healed_at, healed_wall = time.monotonic(), datetime.now(UTC)

    # The rest after the heal: w2 is back among the workers.
    started += _post_events(stack, third)
    assert len(started) == CONTACTS and len(set(started)) == CONTACTS

    def finished() -> bool:
        return statuses() == {"completed": CONTACTS} and outbox_statuses() == {
            ("email", "sent"): CONTACTS,
            ("webhook", "sent"): CONTACTS,
        }

    done = settle(finished, timeout=240, every=0.5)
    seconds, after_heal = time.monotonic() - began, time.monotonic() - healed_at
    _say(began, f"finished: {done}")
    assert done, (statuses(), outbox_statuses(), _tails(stack.logs))

    # Each step recorded once, the non-idempotent one included.
    assert flow_state_counts() == (CONTACTS * STEPS, CONTACTS * STEPS)
    assert scores() == {10: CONTACTS}

    mail, hooks = emails(stack.smtp), webhooks(stack.hooks)
    # One message per contact and step, nothing but the outbox's ids, and
    # every contact reached by e-mail and by webhook.
    assert set(mail.ids) == set(outbox_ids("email")) and mail.distinct == CONTACTS
    assert set(hooks.ids) == set(outbox_ids("webhook")) and hooks.distinct == CONTACTS
    assert {parseaddr(to)[1] for to in set().union(*mail.recipients.values())} == addresses
    assert set().union(*hooks.recipients.values()) == addresses
    assert mail.recipients_with_two_messages() == []
    assert hooks.recipients_with_two_messages() == []
    # A repeat carries the same id and is the message its host had in
    # flight when it died or was cut off: one each at most.
    duplicates = mail.duplicates + hooks.duplicates
    assert duplicates <= 3
    cut_window = (cut_at, healed_at, cut.host.address)
    assert repeats_without_a_kill([kill_at, power_off_at, cut_window], mail, hooks) == []
    # The dead hosts' server connections went back clean.
    assert _inherited_advisory_locks(stack.bouncer) == 0

    # The cut-off host came back: its processes live and beat again.
    assert cut.alive(), _tails(stack.logs)
    assert wait_until(lambda: _beats_since(stack, cut.pids, healed_wall) == cut.pids, 30, 0.5)
    assert all(proc.poll() is not None for proc in killed.procs + gone.procs)
    # No file was written on the hosts (their working directory and home;
    # gunicorn's control socket is no file), nor in the instance folder.
    written = [p for h in stack.hosts.values() for p in h.home.rglob("*") if p.is_file()]
    assert written == []
    assert _instance_files() == instance_before

    record(
        {
            "fault": "multi_host",
            "executions": CONTACTS,
            "worker_hosts": len(WORKER_HOSTS),
            "web_hosts": len(WEB_HOSTS),
            "kill_hit_work": kill_hit_work,
            "cut_hit_work": cut_hit_work,
            "sent_at_kill": sent_at_kill,
            "power_off_hit_work": power_off_hit_work,
            "sent_at_cut": sent_at_cut,
            "sent_during_cut": sent_during_cut,
            "cut_seconds": CUT_SECONDS,
            "done_after_heal_seconds": round(after_heal, 1),
            "duplicates": duplicates,
            "emails_checked": len(mail.ids),
            "webhooks_checked": len(hooks.ids),
            "seconds": round(seconds, 1),
            "load": os.getloadavg()[0],
            "workflow_id": workflow.id,
        }
    )

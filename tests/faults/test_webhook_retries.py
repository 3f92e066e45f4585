"""Webhook targets that fail: a flaky one (3 failures, then 200) and a dead
one (always 500), on a real local HTTP receiver.

The flaky step completes after its retries, with one Idempotency-Key and a
valid signature on every attempt, on the doubling backoff; the dead one
fails its execution, leaves a dead letter, and the retry (API, the
execution page, and the dead-letter page's bulk retry) resumes it at the
webhook in the same execution. Meanwhile another workflow runs to the end
untouched. The fast tests move the clock (time-machine) and drive the
engine with ``drain()``; the slow one does the same with real ``worker.py``
processes on PostgreSQL + Redis and the wall clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from app.automation.delivery.signing import verify
from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import DeadLetter, Firm, OutboxMessage, WorkflowExecution
from app.tenancy import firm_context
from tests.delivery.conftest import Receiver, configured
from tests.engine.helpers import active_workflow, chain, execution, start
from tests.engine.helpers import make_contacts as many_contacts
from tests.factories import make_contact

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BACKOFF = 30
AFTER = ("after", "add_tag", {"tag": "hooked"})


@pytest.fixture
def receivers(app):
    """Three receivers: ``flaky``, ``dead`` and ``healthy``."""
    servers = {name: Receiver() for name in ("flaky", "dead", "healthy")}
    with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
        yield servers
    for server in servers.values():
        server.close()


def _hook_workflow(firm, user, url: str, name: str, **config):
    hook = ("hook", "webhook", {"url": url, "payload": {"who": "{{ contact.email }}"}, **config})
    specs, edges = chain(hook, AFTER)
    return active_workflow(firm, user, specs, edges, name=name)


def _statuses(workflow) -> dict[str, int]:
    db.session.rollback()
    stmt = (
        select(WorkflowExecution.status, func.count())
        .where(WorkflowExecution.workflow_id == workflow.id)
        .group_by(WorkflowExecution.status)
    )
    return dict(db.session.execute(stmt.execution_options(all_firms=True)).all())


def _secret(firm) -> str:
    return db.session.get(Firm, firm.id).webhook_secret


def _attempt_times(receiver: Receiver) -> list[float]:
    return [int(r["headers"]["webhook-timestamp"]) for r in receiver.requests]


def test_a_webhook_failing_three_times_then_succeeding_completes_after_retries(
    acme, alice, receivers
):
    flaky, healthy = receivers["flaky"], receivers["healthy"]
    flaky.statuses = [500, 503, 502]
    started = time.perf_counter()
    workflow = _hook_workflow(
        acme, alice, flaky.url + "/in", "flaky", max_attempts=4, retry_backoff_seconds=BACKOFF
    )
    others = _hook_workflow(acme, alice, healthy.url + "/in", "others")
    contact = make_contact(acme)
    bystanders = [make_contact(acme) for _ in range(5)]
    with time_machine.travel(T0, tick=False) as clock:
        [execution_id] = start(workflow, contact)
        drain()
        # While the flaky step waits for its next attempt, others go through.
        start(others, *bystanders)
        drain()
        assert _statuses(others) == {"completed": 5}
        assert len(healthy.requests) == 5
        for waited in (BACKOFF, 2 * BACKOFF, 4 * BACKOFF):
            assert execution(acme.id, execution_id).status == "waiting"
            clock.shift(timedelta(seconds=waited - 1))
            drain()
            assert len(flaky.requests) == 1 + [BACKOFF, 2 * BACKOFF, 4 * BACKOFF].index(waited)
            clock.shift(timedelta(seconds=1))
            drain()
    done = execution(acme.id, execution_id)
    assert done.status == "completed", done.last_error
    assert done.execution_path == ["hook", "after"]
    assert len(flaky.requests) == 4
    assert {r["headers"]["idempotency-key"] for r in flaky.requests} == {
        flaky.requests[0]["headers"]["idempotency-key"]
    }
    secret = _secret(acme)
    for request in flaky.requests:
        stamp = int(request["headers"]["webhook-timestamp"])
        with time_machine.travel(datetime.fromtimestamp(stamp, UTC), tick=False):
            verify(secret, request["headers"], request["body"])
    stamps = _attempt_times(flaky)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert gaps == [BACKOFF, 2 * BACKOFF, 4 * BACKOFF]
    with firm_context(acme.id):
        [row] = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.execution_id == execution_id)
        ).all()
        assert (row.status, row.attempts) == ("sent", 4)
        assert db.session.scalar(select(func.count()).select_from(DeadLetter)) == 0
    print(
        f"\n[flaky webhook] attempts: {len(flaky.requests)}, retries seen: 3, gaps {gaps}s, "
        f"executions: 1 completed, other workflow: {len(healthy.requests)} completed, "
        f"duplicates: 0, {time.perf_counter() - started:.2f}s"
    )


def _fail_for_good(firm, user, dead: Receiver, contacts: int = 1):
    dead.statuses = [500] * 1000
    workflow = _hook_workflow(
        firm, user, dead.url + "/in", "dead", max_attempts=3, retry_backoff_seconds=BACKOFF
    )
    people = [make_contact(firm) for _ in range(contacts)]
    with time_machine.travel(T0, tick=False) as clock:
        ids = start(workflow, *people)
        drain()
        for waited in (BACKOFF, 2 * BACKOFF):
            clock.shift(timedelta(seconds=waited))
            drain()
    return workflow, ids


def test_a_webhook_that_always_fails_fails_the_execution_with_a_dead_letter(acme, alice, receivers):
    dead, healthy = receivers["dead"], receivers["healthy"]
    others = _hook_workflow(acme, alice, healthy.url + "/in", "others")
    workflow, [execution_id] = _fail_for_good(acme, alice, dead)
    start(others, *[make_contact(acme) for _ in range(5)])
    drain()
    failed = execution(acme.id, execution_id)
    assert failed.status == "failed" and failed.current_node == "hook"
    assert "HTTP 500" in failed.last_error
    assert len(dead.requests) == 3
    with firm_context(acme.id):
        [letter] = db.session.scalars(select(DeadLetter)).all()
        assert (letter.execution_id, letter.node_id, letter.resolved_at) == (
            execution_id,
            "hook",
            None,
        )
        [row] = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.execution_id == execution_id)
        ).all()
        assert (row.status, row.attempts) == ("failed", 3)
    assert _statuses(others) == {"completed": 5}
    print(f"\n[dead webhook] attempts: {len(dead.requests)}, dead letters: 1, others: 5 completed")


def _finishes_after_retry(acme, execution_id: int, dead: Receiver) -> None:
    keys_before = {r["headers"]["idempotency-key"] for r in dead.requests}
    drain()
    done = execution(acme.id, execution_id)
    assert done.status == "completed", done.last_error
    # Resumed at the webhook: the step before is not repeated, the message
    # keeps its Idempotency-Key, and the dead letter is resolved.
    assert done.execution_path == ["hook", "after"]
    assert {r["headers"]["idempotency-key"] for r in dead.requests} == keys_before
    assert dead.requests[-1]["headers"]["webhook-signature"].startswith("v1,")
    with firm_context(acme.id):
        letters = db.session.scalars(
            select(DeadLetter).where(DeadLetter.execution_id == execution_id)
        ).all()
        assert letters and all(letter.resolved_at is not None for letter in letters)


def test_the_api_retry_resumes_a_dead_lettered_webhook(client, acme, alice, receivers, token_for):
    dead = receivers["dead"]
    _, [execution_id] = _fail_for_good(acme, alice, dead)
    dead.statuses = []  # the target is fixed
    response = client.post(
        f"/api/v1/automation/executions/{execution_id}/retry/", headers=token_for(alice)
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] in ("running", "waiting")
    _finishes_after_retry(acme, execution_id, dead)
    assert len(dead.requests) == 4
    again = client.post(
        f"/api/v1/automation/executions/{execution_id}/retry/", headers=token_for(alice)
    )
    assert again.status_code == 409


def test_the_execution_page_retry_resumes_a_dead_lettered_webhook(
    client, auth, acme, alice, receivers
):
    dead = receivers["dead"]
    _, [execution_id] = _fail_for_good(acme, alice, dead)
    dead.statuses = []
    auth.login(alice)
    page = f"/executions/{execution_id}"
    response = client.post(f"{page}/retry", data={"csrf_token": auth.csrf_token(page)})
    assert response.status_code in (200, 302, 303)
    _finishes_after_retry(acme, execution_id, dead)


def test_the_dead_letter_page_retries_the_chosen_executions(client, auth, acme, alice, receivers):
    dead = receivers["dead"]
    _, execution_ids = _fail_for_good(acme, alice, dead, contacts=3)
    dead.statuses = []
    auth.login(alice)
    with firm_context(acme.id):
        letters = db.session.scalars(select(DeadLetter.id).order_by(DeadLetter.id)).all()
    assert len(letters) == 3
    listing = client.get("/dead-letters").get_data(as_text=True)
    assert all(f"#{i}" in listing or str(i) in listing for i in execution_ids)
    response = client.post(
        "/dead-letters/retry",
        data={"ids": [str(i) for i in letters[:2]], "csrf_token": auth.csrf_token("/dead-letters")},
    )
    assert response.status_code in (200, 302, 303)
    drain()
    db.session.rollback()
    statuses = sorted(execution(acme.id, i).status for i in execution_ids)
    assert statuses == ["completed", "completed", "failed"]
    # 3 failed attempts each, then one good one for the two retried.
    assert len(dead.requests) == 3 * 3 + 2


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_real_workers_retry_a_flaky_webhook_and_dead_letter_a_dead_one(
    app, acme, alice, receivers, database_url, redis_url, token_for
):
    """Real ``worker.py`` processes and the wall clock: 1 s backoff."""
    from tests.faults.events_support import served, worker_processes

    flaky, dead, healthy = receivers["flaky"], receivers["dead"], receivers["healthy"]
    flaky.statuses, dead.statuses = [500, 500, 500], [500] * 1000
    started = time.perf_counter()
    flaky_wf = _hook_workflow(
        acme, alice, flaky.url + "/in", "flaky", max_attempts=4, retry_backoff_seconds=1
    )
    dead_wf = _hook_workflow(
        acme, alice, dead.url + "/in", "dead", max_attempts=3, retry_backoff_seconds=1
    )
    others = _hook_workflow(acme, alice, healthy.url + "/in", "others")
    env = {"WEBHOOK_ALLOW_PRIVATE": "1"}
    with worker_processes(database_url, redis_url, 2, **env):
        [flaky_id] = start(flaky_wf, make_contact(acme))
        [dead_id] = start(dead_wf, make_contact(acme))
        start(others, *many_contacts(acme, 200))
        assert _wait(lambda: _statuses(others) == {"completed": 200}), _statuses(others)
        assert _wait(lambda: _statuses(flaky_wf) == {"completed": 1}), _statuses(flaky_wf)
        assert _wait(lambda: _statuses(dead_wf) == {"failed": 1}), _statuses(dead_wf)
        assert len(flaky.requests) == 4 and len(dead.requests) == 3
        assert len(healthy.requests) == 200
        assert len({r["headers"]["idempotency-key"] for r in healthy.requests}) == 200
        dead.statuses = []
        with served(app) as base:
            import httpx

            response = httpx.post(
                f"{base}/api/v1/automation/executions/{dead_id}/retry/",
                headers=token_for(alice),
                trust_env=False,
            )
        assert response.status_code == 200, response.text
        assert _wait(lambda: _statuses(dead_wf) == {"completed": 1}), _statuses(dead_wf)
    assert len(dead.requests) == 4
    assert execution(acme.id, flaky_id).execution_path == ["hook", "after"]
    print(
        f"\n[real workers] flaky attempts 4 (retries seen: 3), dead attempts 3 + 1 after retry, "
        f"others 200 completed, duplicates: 0, {time.perf_counter() - started:.1f}s"
    )


def _wait(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()

"""Forecast a draft: the workflow's draft graph and draft triggers replayed
over the last N days of recorded events, in a sandbox (docs/FORECAST.md).

The replay drives the engine's own walk (engine/walk.py) and node
executors, with a simulated clock: each recorded event (``event_log``, in
the order the bus recorded them) passes the draft triggers' filters and
contact rules as the bus would, enrolls as enrollment would (once per
contact without re-entry, one execution at a time with it), and is walked
at the moment it was recorded; a wait wakes at its ``wake_at``; a message
passes the send gates at its simulated moment, so send windows and
frequency caps hold it as they would have. The sandbox is a
:class:`~app.automation.engine.state.BatchState` kept in memory for the
whole replay: the walk's effects (flow states, outbox rows, CRM changes)
are counted and never written, so nothing is sent, no contact changes and
no execution is stored. Only the forecast's own row is written.

What the replay cannot know: the contacts' facts are today's (a rule
evaluates the contact as it is now, and CRM changes made by other
workflows or people during the period are not replayed); schedule-driven
triggers (dates) and direct starts (manual, API) have no recorded events
and are listed in ``unsupported_triggers``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.automation.delivery.gates import Candidate, GateRun
from app.automation.delivery.gates.cap import COUNTED, FrequencyCapGate
from app.automation.engine.claim import id_in
from app.automation.engine.state import BatchState
from app.automation.engine.walk import jsonable, walk
from app.automation.graph.definition import Graph, definition_of
from app.automation.lifecycle.publishing import waiting_counts
from app.automation.operations.job_rows import claim_queued
from app.automation.triggers.bus import contact_passes
from app.automation.triggers.registry import event_matches, get_trigger_type
from app.clock import ensure_utc, now
from app.extensions import db
from app.models import EventLog, Workflow, WorkflowExecution, WorkflowForecast, WorkflowTrigger
from app.queue import enqueue
from app.tenancy import firm_context

log = logging.getLogger(__name__)

MAX_DAYS = 365
# A forecast replays at most this many events (the rest is reported as cut).
MAX_EVENTS = 200_000
# Progress is written every this many events, and at least this often
# (seconds) while the replay runs: the write is the job's heartbeat.
PROGRESS_EVERY = 500
HEARTBEAT_SECONDS = 10
# A running forecast whose heartbeat is older than this lost its worker; a
# queued one this old lost its job (docs/FORECAST.md "When a worker dies").
STALL_SECONDS = 300
# A walk resumed more often than this in one replay is stopped (a loop).
MAX_WALKS_PER_EXECUTION = 500


class ForecastRefused(ValueError):
    """Bad input for a forecast, by field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def check_days(value) -> int:
    """``days`` as an int in 1..365, or :class:`ForecastRefused`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ForecastRefused("days", "must be a whole number of days")
    try:
        days = int(str(value).strip())
    except ValueError:
        raise ForecastRefused("days", "must be a whole number of days") from None
    if isinstance(value, float) and value != days:
        raise ForecastRefused("days", "must be a whole number of days")
    if days < 1 or days > MAX_DAYS:
        raise ForecastRefused("days", f"must be between 1 and {MAX_DAYS}")
    return days


def start_forecast(workflow: Workflow, days, user=None) -> WorkflowForecast:
    """Queue a forecast of ``workflow``'s draft over the last ``days``
    days; commits and returns its row (status "queued")."""
    days = check_days(days)
    if workflow.status == "archived":
        raise ForecastRefused("workflow", "an archived workflow cannot be forecast")
    forecast = WorkflowForecast(
        workflow_id=workflow.id, user_id=getattr(user, "id", None), days=days, status="queued"
    )
    db.session.add(forecast)
    db.session.commit()
    enqueue(run_forecast, forecast.id)
    return forecast


def latest_forecast(workflow: Workflow) -> WorkflowForecast | None:
    stmt = (
        select(WorkflowForecast)
        .where(WorkflowForecast.workflow_id == workflow.id)
        .order_by(WorkflowForecast.id.desc())
        .limit(1)
    )
    return db.session.scalars(stmt).first()


def as_json(forecast: WorkflowForecast) -> dict:
    """The API's answer for a forecast job (docs/CONTRACT.md "forecasts")."""
    result = dict(forecast.result or {})
    return {
        "id": forecast.id,
        "workflow": forecast.workflow_id,
        "days": forecast.days,
        "status": forecast.status,
        "percent": forecast.percent,
        "error": forecast.error,
        "created_at": forecast.created_at,
        "finished_at": forecast.finished_at,
        "enrollments": result.get("enrollments", 0),
        "messages": result.get("messages", 0),
        "messages_per_day": result.get("messages_per_day", []),
        "per_node": result.get("per_node", {}),
        "holds": result.get("holds", {}),
        "waiting_at_end": result.get("waiting_at_end", {}),
        "moves": result.get("moves", []),
        "events": result.get("events", 0),
        "truncated": result.get("truncated", False),
        "unsupported_triggers": result.get("unsupported_triggers", []),
        "start": result.get("start"),
        "end": result.get("end"),
    }


def max_events() -> int:
    return int(current_app.config.get("FORECAST_MAX_EVENTS") or MAX_EVENTS)


# -- the job -----------------------------------------------------------------
def run_forecast(forecast_id: int) -> None:
    """The queue job: claim the queued forecast, replay, store the result."""
    firm_id = claim_queued(WorkflowForecast.__table__, forecast_id, started_at=now())
    if firm_id is None:
        return  # gone, or another copy of the job has it
    with firm_context(firm_id):
        forecast = db.session.get(WorkflowForecast, forecast_id)
        workflow = db.session.get(Workflow, forecast.workflow_id)
        try:
            result = Replay(workflow, forecast.days, progress=_progress(forecast_id)).run()
        except Exception as exc:
            log.exception("forecast %s failed", forecast_id)
            db.session.rollback()
            _finish(forecast_id, "failed", {}, f"{type(exc).__name__}: {exc}"[:2000])
            return
        db.session.rollback()  # the replay wrote nothing; end its reads
        _finish(forecast_id, "done", result, None)


def recover_forecasts() -> dict:
    """The periodic job: a running forecast whose heartbeat stopped lost its
    worker and is marked failed (it may have been what killed it, so it is
    not run again by itself); a queued one whose job was lost (a Redis
    flush) is enqueued again, which is safe since the job claims its row."""
    table = WorkflowForecast.__table__
    moment = now()
    stale = moment - timedelta(seconds=STALL_SECONDS)
    conn = db.session.connection()
    failed = conn.execute(
        update(table)
        .where(table.c.status == "running", table.c.updated_at < stale)
        .values(
            status="failed",
            error="the worker running this forecast stopped; start it again",
            finished_at=moment,
            updated_at=moment,
        )
    ).rowcount
    queued = list(
        conn.execute(
            select(table.c.id).where(table.c.status == "queued", table.c.updated_at < stale)
        ).scalars()
    )
    if queued:
        conn.execute(update(table).where(id_in(table.c.id, queued)).values(updated_at=moment))
    db.session.commit()
    for forecast_id in queued:
        enqueue(run_forecast, forecast_id)
    return {"stalled": failed, "requeued": len(queued)}


def _progress(forecast_id: int):
    table = WorkflowForecast.__table__

    def report(done: int, total: int) -> None:
        db.session.rollback()  # give back whatever the replay's reads held
        db.session.connection().execute(
            update(table)
            .where(table.c.id == forecast_id)
            .values(processed_events=done, total_events=total, updated_at=now())
        )
        db.session.commit()

    return report


def _finish(forecast_id: int, status: str, result: dict, error: str | None) -> None:
    table = WorkflowForecast.__table__
    moment = now()
    db.session.connection().execute(
        update(table)
        .where(table.c.id == forecast_id)
        .values(status=status, result=result, error=error, finished_at=moment, updated_at=moment)
    )
    db.session.commit()


# -- the sandbox ---------------------------------------------------------------
class SandboxGateRun(GateRun):
    """The step gates over one simulated walk: the frequency cap also
    counts the e-mails the replay sent before (they are in no table)."""

    def __init__(self, conn, population, sent: dict[int, list[datetime]]):
        super().__init__(conn, "step", population)
        self._replayed = sent

    def _state(self, gate):
        fresh = gate.name not in self._states
        state = super()._state(gate)
        if fresh and gate.name == FrequencyCapGate.name:
            self._count_replayed(state)
        return state

    def _count_replayed(self, state: dict) -> None:
        """Add the replay's own e-mails to the gate's per-period counts (the
        gate counted only stored ones: gates/cap.py ``_counts``)."""
        periods = {
            cap["per_days"]
            for settings in state["settings"].values()
            for cap in settings["frequency_caps"]
        }
        if not periods:
            return
        moment = max(c.moment for c in self.population)
        for contact_id in {c.contact_id for c in self.population}:
            times = self._replayed.get(contact_id)
            if not times:
                continue
            stored = state["counts"].get(contact_id)
            counts = {}
            for days in periods:
                inside = [t for t in times if t > moment - timedelta(days=days)]
                count, oldest = (stored or {}).get(days, (0, None))
                counts[days] = (
                    count + len(inside),
                    min([*inside, *([oldest] if oldest else [])], default=None),
                )
            state["counts"][contact_id] = counts
            if stored is None:  # every e-mail of the contact is the replay's
                state["sent"][contact_id] = sorted(times)


class Sandbox(BatchState):
    """The facts of every contact the replay enrolls, for the whole replay;
    message steps find the outbox rows of earlier visits in memory."""

    def __init__(self, rows: list[dict], moment: datetime):
        super().__init__(rows, moment)
        self.outbox: dict[tuple[int, str, int], dict] = {}
        self.sent: dict[int, list[datetime]] = defaultdict(list)

    def message_of(self, execution_id: int, node_id: str, visit: int) -> dict | None:
        return self.outbox.get((execution_id, node_id, visit))

    def gates_for(self, contact_id: int, moment: datetime) -> None:
        state = self.contacts.get(contact_id)
        population = []
        if state is not None:
            for channel in ("email", "sms"):
                address = state.contact.get("email" if channel == "email" else "phone")
                population.append(
                    Candidate(
                        firm_id=self.firm_of_contact.get(contact_id),
                        channel=channel,
                        address=str(address or ""),
                        contact_id=contact_id,
                        contact=state.contact,
                        moment=moment,
                    )
                )
        self.gate_run = SandboxGateRun(db.session.connection(), population, self.sent)


class Replay:
    """One forecast: ``days`` of recorded events through the draft."""

    def __init__(self, workflow: Workflow, days: int, progress=None):
        self.workflow = workflow
        self.days = days
        self.end = now()
        self.start = self.end - timedelta(days=days)
        self.progress = progress
        self.definition = definition_of(workflow)
        self.graph = Graph(self.definition)
        self.entry = self.graph.entry()
        self.triggers = [
            t
            for t in db.session.scalars(
                select(WorkflowTrigger)
                .where(WorkflowTrigger.workflow_id == workflow.id)
                .order_by(WorkflowTrigger.id)
            )
            if t.is_active
        ]
        self.rows: dict[int, dict] = {}
        self.queue: list[tuple[datetime, int, int]] = []
        self.seq = itertools.count()
        self.walks: dict[int, int] = defaultdict(int)
        self.entered: dict[int, datetime] = {}  # contact -> first entry (no re-entry)
        self.inside: dict[int, int] = {}  # contact -> its running/waiting execution
        self.per_node: dict[str, dict] = {}
        self.held_visits: set[tuple[int, str, int]] = set()
        self.holds: dict[str, int] = defaultdict(int)
        self.per_day: dict[str, int] = defaultdict(int)
        self.messages = 0
        self.sandbox: Sandbox | None = None
        self.done_events = 0
        self.total_events = 0
        self.beat_at = time.monotonic()

    # -- the replay ------------------------------------------------------------
    def run(self) -> dict:
        event_types, unsupported = self._event_types()
        events, truncated = self._events(event_types)
        result_base = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "events": len(events),
            "truncated": truncated,
            "unsupported_triggers": unsupported,
            "moves": self._moves(),
        }
        contact_ids = sorted({e["contact_id"] for e in events})
        before = self._entered_before(contact_ids)
        template = [self._row(0, cid, self.start, {}) for cid in contact_ids]
        self.sandbox = Sandbox(template, self.start)
        for contact_id in before:
            self.entered[contact_id] = self.start
        if self.entry is None:
            events = []
        self.total_events = len(events)
        for index, event in enumerate(events):
            self._run_until(event["created_at"])
            self._enroll(event)
            self.done_events = index + 1
            if self.done_events % PROGRESS_EVERY == 0:
                self._report()
        self._run_until(self.end)
        return {**result_base, **self._figures()}

    def _event_types(self) -> tuple[set[str], list[str]]:
        wanted: set[str] = set()
        unsupported: list[str] = []
        for trigger in self.triggers:
            kind = get_trigger_type(trigger.trigger_type)
            if kind.driven_by == "event":
                wanted.add(trigger.trigger_type)
            else:
                unsupported.append(trigger.trigger_type)
        return wanted, sorted(set(unsupported))

    def _events(self, types: set[str]) -> tuple[list[dict], bool]:
        if not types:
            return [], False
        limit = max_events()
        table = EventLog.__table__
        stmt = (
            select(
                table.c.id,
                table.c.event_id,
                table.c.event_type,
                table.c.contact_id,
                table.c.data,
                table.c.source,
                table.c.created_at,
            )
            .where(
                table.c.firm_id == self.workflow.firm_id,
                table.c.event_type.in_(sorted(types)),
                table.c.contact_id.is_not(None),
                table.c.created_at >= self.start,
                table.c.created_at <= self.end,
            )
            .order_by(table.c.created_at, table.c.id)
            .limit(limit + 1)
        )
        rows = [dict(row._mapping) for row in db.session.connection().execute(stmt)]
        for row in rows:
            row["created_at"] = ensure_utc(row["created_at"])
        return rows[:limit], len(rows) > limit

    def _entered_before(self, contact_ids: list[int]) -> set[int]:
        """Without re-entry a contact enters once, ever: those who entered
        the real workflow before the period are not enrolled again."""
        if self.workflow.allow_reentry or not contact_ids:
            return set()
        table = WorkflowExecution.__table__
        stmt = select(table.c.contact_id).where(
            table.c.workflow_id == self.workflow.id,
            table.c.test_mode.is_(False),
            table.c.started_at < self.start,
            id_in(table.c.contact_id, contact_ids),
        )
        return set(db.session.connection().execute(stmt).scalars())

    def _row(self, execution_id: int, contact_id: int, moment: datetime, context: dict) -> dict:
        return {
            "id": execution_id,
            "firm_id": self.workflow.firm_id,
            "workflow_id": self.workflow.id,
            "version": 0,  # the draft (engine/state.py reads the live graph)
            "contact_id": contact_id,
            "status": "running",
            "current_node": self.entry,
            "execution_path": [],
            "context_data": context,
            "trigger_type": context.get("trigger_type"),
            "goal_reached": False,
            "test_mode": False,
            "wake_at": moment,
            "wait_reason": None,
            "attempts": 0,
            "steps_taken": 0,
            "started_at": moment,
        }

    def _enroll(self, event: dict) -> None:
        contact_id = event["contact_id"]
        if contact_id not in self.sandbox.contacts:
            return
        for trigger in self.triggers:
            if trigger.trigger_type != event["event_type"]:
                continue
            if not event_matches(trigger.trigger_type, trigger.configuration, event["data"]):
                continue
            if not contact_passes(trigger, contact_id, event["data"]):
                continue
            if not self.workflow.allow_reentry and contact_id in self.entered:
                return
            if contact_id in self.inside:
                return
            moment = event["created_at"]
            context = {
                **jsonable(event["data"] or {}),
                "trigger_type": event["event_type"],
                "event_id": event["event_id"],
                "source": event["source"],
            }
            execution_id = len(self.rows) + 1
            row = self._row(execution_id, contact_id, moment, context)
            self.rows[execution_id] = row
            self.entered.setdefault(contact_id, moment)
            self.inside[contact_id] = execution_id
            self._advance(row, moment)
            return

    def _run_until(self, moment: datetime) -> None:
        while self.queue and self.queue[0][0] <= moment:
            wake_at, _, execution_id = heapq.heappop(self.queue)
            row = self.rows[execution_id]
            if row["status"] != "waiting" or row["wake_at"] != wake_at:
                continue
            self._advance(row, wake_at)
            if time.monotonic() - self.beat_at >= HEARTBEAT_SECONDS:
                self._report()

    def _report(self) -> None:
        self.beat_at = time.monotonic()
        if self.progress:
            self.progress(self.done_events, self.total_events)

    def _advance(self, row: dict, moment: datetime) -> None:
        """Walk ``row`` at ``moment`` with the engine's walk; the hand-over
        of a pending message is immediate, so its delivery wait ends at
        once, as the dispatcher's wake ends it."""
        for _ in range(MAX_WALKS_PER_EXECUTION):
            self.walks[row["id"]] += 1
            if self.walks[row["id"]] > MAX_WALKS_PER_EXECUTION:
                row["status"] = "failed"
                break
            self.sandbox.gates_for(row["contact_id"], moment)
            effects = walk(row, self.sandbox, moment)
            self._apply(row, effects, moment)
            if row["status"] == "waiting" and row["wait_reason"] == "delivery":
                continue
            break
        if row["status"] not in ("running", "waiting"):
            self.inside.pop(row["contact_id"], None)
            return
        wake_at = row["wake_at"]
        if wake_at is not None and wake_at <= self.end:
            heapq.heappush(self.queue, (wake_at, next(self.seq), row["id"]))

    def _node(self, node_id: str) -> dict:
        return self.per_node.setdefault(
            node_id, {"entered": 0, "held": 0, "skipped": 0, "failed": 0, "messages": 0}
        )

    def _apply(self, row: dict, effects, moment: datetime) -> None:
        waiting = self.sandbox.waiting
        for flow in effects.flow:
            key = (row["id"], flow["node_id"], flow["visit"])
            counts = self._node(flow["node_id"])
            if not flow["exists"]:
                counts["entered"] += 1
            status = flow["action_status"]
            if status == "deferred" and key not in self.held_visits:
                self.held_visits.add(key)
                counts["held"] += 1
                gate = (flow["action_result"] or {}).get("gate") or "other"
                self.holds[gate] += 1
            if flow.get("exited_at") is not None:
                waiting.pop(key, None)
                if status == "skipped":
                    counts["skipped"] += 1
                elif status == "failed":
                    counts["failed"] += 1
            else:
                previous = waiting.get(key)
                waiting[key] = {
                    "execution_id": row["id"],
                    "node_id": flow["node_id"],
                    "visit": flow["visit"],
                    "entered_at": previous["entered_at"] if previous else flow["entered_at"],
                    "action_result": flow["action_result"],
                    "variant": flow.get("variant"),
                }
        for message in effects.outbox:
            key = (message["execution_id"], message["node_id"], message["visit"])
            status = message["status"]
            if status in COUNTED:
                self.messages += 1
                self.per_day[moment.date().isoformat()] += 1
                self._node(message["node_id"])["messages"] += 1
                topic = (message.get("payload") or {}).get("topic") or {}
                if message["channel"] == "email" and topic.get("kind") != "transactional":
                    self.sandbox.sent[row["contact_id"]].append(moment)
                status = "sent" if status == "pending" else status
            self.sandbox.outbox[key] = {
                "status": status,
                "last_error": message.get("last_error"),
                "message_id": message.get("message_id"),
                "id": None,
                "response": message.get("response") or {},
            }
        execution = effects.execution
        if execution:
            row.update(
                status=execution["status"],
                current_node=execution["current_node"],
                execution_path=list(execution["execution_path"]),
                context_data=execution["context_data"],
                goal_reached=execution["goal_reached"],
                attempts=execution["attempts"],
                steps_taken=execution["steps_taken"],
                wake_at=execution["wake_at"],
                wait_reason=execution["wait_reason"],
            )
            if execution["status"] == "waiting" and execution["wait_reason"] == "condition":
                row["wake_at"] = self._condition_deadline(row, execution["wake_at"])

    def _condition_deadline(self, row: dict, wake_at: datetime) -> datetime:
        """A condition wait re-checks every few minutes in production for
        changes made meanwhile; in the sandbox the contact's facts change
        only when its own walk runs, so the next look that can differ is
        the timeout."""
        visit = row["execution_path"].count(row["current_node"]) or 1
        state = self.sandbox.waiting.get((row["id"], row["current_node"], visit))
        timeout = ((state or {}).get("action_result") or {}).get("timeout_at")
        if not timeout:
            return wake_at
        return max(wake_at, ensure_utc(datetime.fromisoformat(timeout)))

    # -- the figures -------------------------------------------------------------
    def _figures(self) -> dict:
        days = []
        day = self.start.date()
        while day <= self.end.date():
            days.append({"date": day.isoformat(), "count": self.per_day.get(day.isoformat(), 0)})
            day += timedelta(days=1)
        waiting_at_end: dict[str, int] = defaultdict(int)
        for row in self.rows.values():
            if row["status"] in ("running", "waiting") and row["current_node"]:
                waiting_at_end[row["current_node"]] += 1
        per_node = {
            node_id: self.per_node.get(
                node_id, {"entered": 0, "held": 0, "skipped": 0, "failed": 0, "messages": 0}
            )
            for node_id in self.graph.nodes
        }
        statuses: dict[str, int] = defaultdict(int)
        for row in self.rows.values():
            statuses[row["status"]] += 1
        return {
            "enrollments": len(self.rows),
            "messages": self.messages,
            "messages_per_day": days,
            "per_node": per_node,
            "holds": dict(self.holds),
            "waiting_at_end": dict(waiting_at_end),
            "outcomes": dict(statuses),
        }

    def _moves(self) -> list[dict]:
        """Where publishing this draft would put the contacts inside the
        live workflow now: by default the step with the same node_id
        (lifecycle/publishing.py); a step the draft removed has no place,
        and publishing asks where they go."""
        if self.workflow.status == "draft":
            return []
        draft = {key: node["node_type"] for key, node in self.graph.nodes.items()}
        moves = []
        for node_id, count in sorted(waiting_counts(self.workflow).items()):
            kept = node_id in draft
            moves.append(
                {
                    "node": node_id,
                    "contacts": count,
                    "to": node_id if kept else None,
                    "removed": not kept,
                }
            )
        return moves

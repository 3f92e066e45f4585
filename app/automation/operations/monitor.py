"""The stuck-work monitor (docs/OPERATIONS.md "Stuck work").

Work in this system is never lost, only late (docs/ARCHITECTURE.md rule 1), so
"late" is what to watch. Each check below finds one way work gets stuck
and says where, grouped by workflow and step, in words an operator can
act on ("412 executions are late at step 'Wait 3 days' of workflow
'Onboarding'"):

- ``late_wakes``: waits past their wake time by more than
  ``MONITOR_LATE_SECONDS`` (no worker wakes them: workers down, the wake
  job stopped, a queue jammed);
- ``lease_expiries``: executions whose lease expired at least
  ``MONITOR_LEASE_EXPIRIES`` times (their worker died or froze holding
  them, again and again: a step that crashes its worker);
- ``dead_letters``: at least ``MONITOR_DEAD_LETTERS`` executions failed
  at one step within ``MONITOR_WINDOW_SECONDS`` (a receiver that fails
  every call, a broken template);
- ``delivery_backlog``: messages due for more than
  ``MONITOR_BACKLOG_SECONDS`` and not sent (no delivery worker, a
  provider that hangs);
- ``sending_paused``: a firm's sending is paused (its bounce or
  complaint rate; docs/CONTRACT.md "Sending safely");
- ``workers_missing``: a worker stopped beating (killed, frozen, cut
  off), or no worker serves a queue (Redis mode; app/automation/
  operations/workers.py).

:func:`check` runs them: across firms for the periodic job and
``automation doctor``, for the current firm (tenancy applies: the queries
are ORM queries on firm-owned models) for the admin Health page.
:func:`run_monitor`, the periodic job, keeps the open problems in
``health_alerts`` and raises an internal notification, with a link to the
Health page, to the firm's admins when a problem turns bad; the metrics
page exports them as gauges.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from app import queue as app_queue
from app.automation.delivery.pacing import settings_of
from app.automation.operations.workers import known_workers
from app.clock import ensure_utc, now
from app.extensions import db
from app.models import (
    DeadLetter,
    Firm,
    HealthAlert,
    Notification,
    OutboxMessage,
    User,
    Workflow,
    WorkflowExecution,
    WorkflowNode,
)
from app.tenancy import current_firm_id, firm_context

log = logging.getLogger(__name__)

CHECKS = (
    "late_wakes",
    "lease_expiries",
    "dead_letters",
    "delivery_backlog",
    "sending_paused",
    "workers_missing",
)


@dataclass
class Finding:
    check: str
    summary: str
    count: int = 1
    firm_id: int | None = None
    workflow_id: int | None = None
    workflow: str | None = None
    node_id: str | None = None
    step: str | None = None
    detail: str | None = None  # a channel, a worker name, a queue
    oldest: datetime | None = None

    @property
    def key(self) -> str:
        parts = (self.check, self.firm_id, self.workflow_id, self.node_id, self.detail)
        return ":".join("" if part is None else str(part) for part in parts)[:300]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["oldest"] = self.oldest.isoformat() if self.oldest else None
        data["key"] = self.key
        return data


@dataclass
class Report:
    checked_at: datetime
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def by_check(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {name: [] for name in CHECKS}
        for finding in self.findings:
            grouped[finding.check].append(finding)
        return grouped

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ok else "problems",
            "checked_at": self.checked_at.isoformat(),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def _setting(name: str, default: float) -> float:
    value = current_app.config.get(name)
    return float(default if value is None else value)


def check(all_firms: bool = True) -> Report:
    """Run every check; ``all_firms=False`` sees the current firm only
    (and the deployment-wide checks)."""
    moment = now()
    options = {"all_firms": True} if all_firms else {}
    report = Report(checked_at=moment)
    try:
        for finder in (_late_wakes, _lease_expiries, _dead_letters, _delivery_backlog):
            report.findings.extend(finder(moment, options))
        report.findings.extend(_sending_paused(all_firms))
    finally:
        db.session.rollback()
    report.findings.extend(_workers_missing())
    _name_steps(report.findings, options)
    return report


def _late_wakes(moment, options) -> list[Finding]:
    late = moment - timedelta(seconds=_setting("MONITOR_LATE_SECONDS", 300))
    e = WorkflowExecution
    stmt = (
        select(e.firm_id, e.workflow_id, e.current_node, func.count(), func.min(e.wake_at))
        .where(e.status == "waiting", e.wake_at < late)
        .group_by(e.firm_id, e.workflow_id, e.current_node)
    )
    found = []
    for firm_id, workflow_id, node_id, count, oldest in db.session.execute(
        stmt, execution_options=options
    ):
        oldest = ensure_utc(oldest)
        found.append(
            Finding(
                "late_wakes",
                f"{count} execution(s) are late at step {{step}} of workflow {{workflow}} "
                f"(due {_ago(moment - oldest)} ago and not woken)",
                count=count,
                firm_id=firm_id,
                workflow_id=workflow_id,
                node_id=node_id,
                oldest=oldest,
            )
        )
    return found


def _lease_expiries(moment, options) -> list[Finding]:
    limit = int(_setting("MONITOR_LEASE_EXPIRIES", 3))
    e = WorkflowExecution
    stmt = (
        select(e.firm_id, e.workflow_id, e.current_node, func.count(), func.max(e.lease_expiries))
        .where(e.status.in_(("running", "waiting")), e.lease_expiries >= limit)
        .group_by(e.firm_id, e.workflow_id, e.current_node)
    )
    return [
        Finding(
            "lease_expiries",
            f"{count} execution(s) at step {{step}} of workflow {{workflow}} lost their "
            f"worker {most} times (a worker died or froze holding them, again and again)",
            count=count,
            firm_id=firm_id,
            workflow_id=workflow_id,
            node_id=node_id,
        )
        for firm_id, workflow_id, node_id, count, most in db.session.execute(
            stmt, execution_options=options
        )
    ]


def _dead_letters(moment, options) -> list[Finding]:
    window = _setting("MONITOR_WINDOW_SECONDS", 3600)
    limit = int(_setting("MONITOR_DEAD_LETTERS", 5))
    d = DeadLetter
    stmt = (
        select(d.firm_id, d.workflow_id, d.node_id, func.count(), func.min(d.created_at))
        .where(d.resolved_at.is_(None), d.created_at >= moment - timedelta(seconds=window))
        .group_by(d.firm_id, d.workflow_id, d.node_id)
        .having(func.count() >= limit)
    )
    return [
        Finding(
            "dead_letters",
            f"{count} execution(s) failed at step {{step}} of workflow {{workflow}} "
            f"in the last {_ago(timedelta(seconds=window))}",
            count=count,
            firm_id=firm_id,
            workflow_id=workflow_id,
            node_id=node_id,
            oldest=ensure_utc(oldest),
        )
        for firm_id, workflow_id, node_id, count, oldest in db.session.execute(
            stmt, execution_options=options
        )
    ]


def _delivery_backlog(moment, options) -> list[Finding]:
    due = moment - timedelta(seconds=_setting("MONITOR_BACKLOG_SECONDS", 300))
    o = OutboxMessage
    stmt = (
        select(
            o.firm_id,
            o.workflow_id,
            o.node_id,
            o.channel,
            func.count(),
            func.min(o.next_attempt_at),
        )
        .where(o.status == "pending", o.next_attempt_at < due)
        .group_by(o.firm_id, o.workflow_id, o.node_id, o.channel)
    )
    found = []
    for firm_id, workflow_id, node_id, channel, count, oldest in db.session.execute(
        stmt, execution_options=options
    ):
        oldest = ensure_utc(oldest)
        found.append(
            Finding(
                "delivery_backlog",
                f"{count} {channel} message(s) of step {{step}} of workflow {{workflow}} "
                f"are waiting to be sent (due {_ago(moment - oldest)} ago)",
                count=count,
                firm_id=firm_id,
                workflow_id=workflow_id,
                node_id=node_id,
                detail=channel,
                oldest=oldest,
            )
        )
    return found


def _sending_paused(all_firms: bool) -> list[Finding]:
    stmt = select(Firm.id, Firm.name, Firm.settings)
    if not all_firms:
        stmt = stmt.where(Firm.id == (current_firm_id() or 0))
    found = []
    for firm_id, name, settings in db.session.execute(stmt):
        sending = settings_of(settings)  # the pause docs/SENDING.md describes
        if sending["paused"]:
            reason = sending.get("paused_reason") or "no reason given"
            found.append(
                Finding(
                    "sending_paused",
                    f"sending is paused for {name!r} ({reason}): messages wait",
                    firm_id=firm_id,
                )
            )
    return found


def _workers_missing() -> list[Finding]:
    app = current_app._get_current_object()
    if not app.config.get("REDIS_URL"):
        return []  # in-process jobs: the web process is the worker
    missing_after = _setting("WORKER_MISSING_SECONDS", 30)
    try:
        workers = known_workers(app)
    except Exception as exc:
        return [Finding("workers_missing", f"Redis is not reachable: {exc}", detail="redis")]
    found = []
    live = [w for w in workers if w["age"] <= missing_after]
    for worker in workers:
        if worker["age"] > missing_after:
            found.append(
                Finding(
                    "workers_missing",
                    f"worker {worker['name']} on {worker.get('host')} (pid {worker.get('pid')}) "
                    f"has not been heard from for {_ago(timedelta(seconds=worker['age']))}",
                    detail=worker["name"],
                )
            )
    for name in app_queue.QUEUES:
        if not any(name in (w.get("queues") or []) for w in live):
            found.append(
                Finding(
                    "workers_missing",
                    f"no live worker serves the {name} queue: its work waits",
                    detail=f"queue:{name}",
                )
            )
    return found


def _name_steps(findings: list[Finding], options) -> None:
    """Workflow names and step labels in place of the ids."""
    workflow_ids = {f.workflow_id for f in findings if f.workflow_id is not None}
    names, labels = {}, {}
    if workflow_ids:
        try:
            names = dict(
                db.session.execute(
                    select(Workflow.id, Workflow.name).where(Workflow.id.in_(workflow_ids)),
                    execution_options=options,
                ).all()
            )
            rows = db.session.execute(
                select(WorkflowNode.workflow_id, WorkflowNode.node_id, WorkflowNode.label).where(
                    WorkflowNode.workflow_id.in_(workflow_ids)
                ),
                execution_options=options,
            ).all()
            labels = {(w, n): label for w, n, label in rows}
        finally:
            db.session.rollback()
    for finding in findings:
        finding.workflow = names.get(finding.workflow_id) or (
            f"#{finding.workflow_id}" if finding.workflow_id is not None else None
        )
        if finding.node_id is not None:
            finding.step = labels.get((finding.workflow_id, finding.node_id)) or finding.node_id
        finding.summary = finding.summary.replace("{step}", repr(finding.step or "?")).replace(
            "{workflow}", repr(finding.workflow or "?")
        )


def _ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# -- the periodic job ----------------------------------------------------------


def run_monitor() -> dict:
    """Check, remember open problems, notify on the ones that turned bad;
    returns counts (for logs)."""
    report = check(all_firms=True)
    moment = report.checked_at
    found = {finding.key: finding for finding in report.findings}
    alerts = {alert.key: alert for alert in db.session.scalars(select(HealthAlert))}
    opened: list[Finding] = []
    for key, finding in found.items():
        alert = alerts.get(key)
        if alert is None:
            alert = HealthAlert(key=key, kind=finding.check, firm_id=finding.firm_id)
            db.session.add(alert)
        if alert.closed_at is not None or alert.id is None:
            alert.opened_at = moment
            alert.closed_at = None
            opened.append(finding)
        alert.summary = finding.summary
        alert.count = finding.count
        alert.last_seen_at = moment
    closed = 0
    for key, alert in alerts.items():
        if key not in found and alert.closed_at is None:
            alert.closed_at = moment
            closed += 1
    db.session.commit()
    for finding in opened:
        log.warning("health: %s", finding.summary)
    _notify(opened)
    return {"problems": len(found), "opened": len(opened), "closed": closed}


def _notify(opened: list[Finding]) -> None:
    """An internal notification per new problem to the admins of its firm
    (every firm's admins for a problem of the whole deployment)."""
    if not opened:
        return
    link = f"{current_app.config.get('BASE_URL') or ''}/admin/health"
    admins = db.session.execute(
        select(User.id, User.firm_id).where(User.role == "admin", User.is_active_user.is_(True)),
        execution_options={"all_firms": True},
    ).all()
    by_firm: dict[int, list[int]] = {}
    for user_id, firm_id in admins:
        by_firm.setdefault(firm_id, []).append(user_id)
    for finding in opened:
        firms = [finding.firm_id] if finding.firm_id is not None else list(by_firm)
        for firm_id in firms:
            with firm_context(firm_id):
                for user_id in by_firm.get(firm_id, []):
                    db.session.add(
                        Notification(user_id=user_id, message=f"Health: {finding.summary}. {link}")
                    )
                db.session.commit()


def gauges() -> list:
    """The open problems as gauges (from the last periodic run)."""
    from prometheus_client.core import GaugeMetricFamily

    rows = db.session.execute(
        select(HealthAlert.kind, func.count(), func.coalesce(func.sum(HealthAlert.count), 0))
        .where(HealthAlert.closed_at.is_(None))
        .group_by(HealthAlert.kind)
    ).all()
    by_kind = {kind: (problems, affected) for kind, problems, affected in rows}
    problems = GaugeMetricFamily(
        "automation_health_problems",
        "Open problems found by the stuck-work monitor, by check.",
        labels=["check"],
    )
    affected = GaugeMetricFamily(
        "automation_health_affected",
        "Executions, messages or workers in the open problems, by check.",
        labels=["check"],
    )
    for kind in CHECKS:
        count, total = by_kind.get(kind, (0, 0))
        problems.add_metric([kind], count)
        affected.add_metric([kind], total)
    return [problems, affected]

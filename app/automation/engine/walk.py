"""Walking one execution in memory until a wait, the end or a failure.

The walk only computes: each visit becomes a flow-state row, the
execution's final state an update, and the actions' writes land on the
execution's :class:`Effects`; :mod:`engine_write` writes them.

Rules the walk enforces:
- a visit's number is how many times the path already holds the node,
  plus one; resuming a wait (``wait_reason`` set) continues the same visit;
- an action that raises is retried with exponential backoff
  (``max_attempts``, ``retry_backoff_seconds`` doubling) through a
  ``retry`` wait, then the execution fails with a dead-letter row;
- "jump to goal": before each step, a contact meeting a rules-goal not
  yet reached in this execution jumps to it;
- at most ``ENGINE_MAX_STEPS_WITHOUT_WAIT`` steps per walk (loops).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from decimal import Decimal
from time import perf_counter

from flask import current_app

from app.automation.engine.state import BatchState, ContactState, WorkflowInfo
from app.automation.nodes.control import goal_met
from app.automation.nodes.registry import executor_for, has_flag
from app.automation.nodes.step import Effects, Outcome, Step
from app.automation.operations.logs import log_context
from app.tenancy import firm_context

log = logging.getLogger(__name__)

NON_RETRYABLE = (LookupError,)


_PLAIN = frozenset({str, int, float, bool})


def jsonable(value):
    """Results and context are stored as JSON: dates become ISO strings,
    decimals floats, sets sorted lists."""
    if value is None or type(value) in _PLAIN:
        return value
    if type(value) is dict:
        # Most results are flat dicts of strings and numbers: no call per value.
        return {
            k if type(k) is str else str(k): v if v is None or type(v) in _PLAIN else jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set):
        return sorted((jsonable(v) for v in value), key=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


class Walk:
    """The state of one execution while it is walked."""

    def __init__(self, row: dict, state: BatchState, moment: datetime):
        self.row = row
        self.state = state
        self.moment = moment
        self.effects = Effects(
            row["id"],
            row["firm_id"],
            contact_id=row["contact_id"],
            workflow_id=row["workflow_id"],
            test_mode=bool(row["test_mode"]),
        )
        self.path: list[str] = list(row["execution_path"] or [])
        self.context: dict = dict(row["context_data"] or {})
        self.goal_reached = bool(row["goal_reached"])
        self.attempts = int(row["attempts"] or 0)
        self.test_mode = bool(row["test_mode"])
        self.max_steps = int(current_app.config.get("ENGINE_MAX_STEPS_WITHOUT_WAIT") or 200)
        # A loop whose wait does not wait (a date already past, a condition
        # already met) would run the same steps until max_steps: 100 e-mails
        # to one contact. A step repeating within one walk is that loop.
        self.max_repeats = int(current_app.config.get("ENGINE_MAX_REPEATS_WITHOUT_WAIT") or 2)

    # -- the loop ------------------------------------------------------------
    def run(self) -> Effects:
        row = self.row
        workflow = self.state.workflow_for(row)
        contact = self.state.contacts.get(row["contact_id"])
        if workflow is None or contact is None:
            missing = "workflow version" if workflow is None else "contact"
            self._fail(row["current_node"], f"the {missing} no longer exists", None)
            return self.effects
        with (
            firm_context(row["firm_id"]),
            log_context(workflow_id=row["workflow_id"], execution_id=row["id"]),
        ):
            self._loop(workflow, contact)
        self.effects.hook_facts = self._hook_facts()
        return self.effects

    def _hook_facts(self) -> tuple[str, ...]:
        """What this walk did that REST hooks hear of (app/automation/hooks/facts.py):
        the first step, the end (without failure), a goal newly reached."""
        if self.test_mode:
            return ()
        facts = []
        if not self.row["steps_taken"] and self.effects.steps:
            facts.append("execution.started")
        if self.effects.execution.get("status") in ("completed", "goal_reached"):
            facts.append("execution.completed")
        if self.goal_reached and not self.row["goal_reached"]:
            facts.append("goal.reached")
        return tuple(facts)

    def _loop(self, workflow: WorkflowInfo, contact: ContactState) -> None:
        node_id = self.row["current_node"]
        resuming = self.row["wait_reason"]
        steps = 0
        repeats: dict[str, int] = {}
        while True:
            if node_id is None:
                self._end(None)
                return
            jump = self._goal_to_jump_to(workflow, contact, node_id)
            if jump is not None:
                if resuming:
                    self._close_waiting(node_id, jump)
                    resuming = None
                node_id = jump
            spec = workflow.nodes.get(node_id)
            if spec is None:
                self._fail(node_id, f"step {node_id!r} is not in this workflow version", None)
                return
            steps += 1
            if steps > self.max_steps:
                self._fail(node_id, f"stopped after {self.max_steps} steps without a wait", None)
                return
            repeats[node_id] = repeats.get(node_id, 0) + 1
            if repeats[node_id] > self.max_repeats:
                message = f"stopped: step {node_id!r} ran {self.max_repeats} times without a wait"
                self._fail(node_id, message, None)
                return
            if resuming:
                visit = self.path.count(node_id) or 1
                waiting = self.state.waiting.get((self.row["id"], node_id, visit))
                if not self.path or self.path[-1] != node_id:
                    self.path.append(node_id)
            else:
                self.path.append(node_id)
                visit = self.path.count(node_id)
                waiting = None
            step = Step(
                row=self.row,
                workflow=workflow,
                node=spec,
                visit=visit,
                state=self.state,
                contact=contact,
                effects=self.effects,
                context=self.context,
                moment=self.moment,
                resuming=resuming,
                waiting=waiting,
                test_mode=self.test_mode,
            )
            self.effects.steps += 1
            started = perf_counter()
            outcome = self._execute(step)
            self.effects.step_log.append((spec.node_type, outcome.status, perf_counter() - started))
            entered = waiting["entered_at"] if waiting else self.moment
            exists = waiting is not None
            if outcome.status == "failed":
                self._failed_step(step, outcome, entered, exists)
                return
            if outcome.status in ("waiting", "deferred"):
                self._flow(step, outcome, entered, exists, exited=False)
                self._wait(node_id, outcome)
                return
            next_node = workflow.graph.next_node(node_id, outcome.branch, outcome.variant)
            if outcome.goal:
                self.goal_reached = True
                if workflow.exit_on_goal:
                    next_node = None
            self._flow(step, outcome, entered, exists, exited=True, next_node=next_node)
            self.attempts = 0
            resuming = None
            if next_node is None:
                self._end(node_id)
                return
            node_id = next_node

    def _execute(self, step: Step) -> Outcome:
        if step.node.config_error:
            return Outcome.fail(step.node.config_error)
        run = executor_for(step.node.node_type)
        if run is None:
            return Outcome.fail(f"no executor for node type {step.node.node_type!r}")
        try:
            return run(step)
        except Exception as exc:
            from app.automation.templating.render import TemplateError

            retryable = not isinstance(exc, (TemplateError, *NON_RETRYABLE))
            if retryable:
                log.warning("step %s of execution %s raised", step.node.node_id, step.row["id"])
            return Outcome.fail(_error_text(exc), retryable=retryable)

    # -- jump to goal -------------------------------------------------------
    def _goal_to_jump_to(self, workflow: WorkflowInfo, contact, node_id: str) -> str | None:
        if not workflow.rule_goals or workflow.nodes.get(node_id) is None:
            return None
        if has_flag(workflow.nodes[node_id].node_type, "jump_target"):
            return None
        facts = None
        for goal_id, configuration in workflow.rule_goals:
            if goal_id in self.path:
                continue
            facts = facts or self.state.facts(contact, self.row, self.context)
            if goal_met(configuration, facts):
                return goal_id
        return None

    def _close_waiting(self, node_id: str, goal_id: str) -> None:
        visit = self.path.count(node_id) or 1
        waiting = self.state.waiting.get((self.row["id"], node_id, visit))
        self.effects.flow.append(
            {
                "exists": waiting is not None,
                "execution_id": self.row["id"],
                "node_id": node_id,
                "visit": visit,
                # Part of the row's key on PostgreSQL (app/models/partitioning.py).
                "entered_at": waiting["entered_at"] if waiting else self.moment,
                "exited_at": self.moment,
                "action_status": "skipped",
                "action_result": {"reason": "jumped to goal", "goal": goal_id},
                "branch": "goal",
                "next_node": goal_id,
            }
        )

    # -- recording ------------------------------------------------------------
    def _flow(self, step, outcome, entered, exists, exited, next_node=None) -> None:
        row = {
            "exists": exists,
            "execution_id": self.row["id"],
            "node_id": step.node.node_id,
            "visit": step.visit,
            # Part of the row's key on PostgreSQL (app/models/partitioning.py).
            "entered_at": entered,
            "action_status": outcome.status,
            "action_result": jsonable(outcome.result),
            "exited_at": self.moment if exited else None,
            "variant": outcome.variant,
            "branch": outcome.variant if outcome.branch == "variant" else outcome.branch,
            "next_node": next_node,
        }
        if not exists:
            row.update(
                firm_id=self.row["firm_id"],
                workflow_id=self.row["workflow_id"],
                node_type=step.node.node_type,
            )
        self.effects.flow.append(row)

    def _failed_step(self, step: Step, outcome: Outcome, entered, exists) -> None:
        config = step.node.config
        max_attempts = int(getattr(config, "max_attempts", 1) or 1)
        backoff = float(getattr(config, "retry_backoff_seconds", 0) or 0)
        attempt = self.attempts + 1
        result = {**outcome.result, "error": outcome.error, "attempt": attempt}
        if outcome.retryable and attempt < max_attempts and not self.test_mode:
            wake_at = self.moment + timedelta(seconds=backoff * 2 ** (attempt - 1))
            retry = Outcome.wait(wake_at, "retry", **result)
            self._flow(step, retry, entered, exists, exited=False)
            self.attempts = attempt
            self._wait(step.node.node_id, retry, error=outcome.error)
            return
        self._flow(step, Outcome(status="failed", result=result), entered, exists, exited=True)
        self.attempts = attempt
        self._fail(step.node.node_id, outcome.error or "failed", attempt)

    def _base(self, node_id: str | None) -> dict:
        return {
            "id": self.row["id"],
            "current_node": node_id,
            "execution_path": self.path,
            "context_data": jsonable(self.context),
            "goal_reached": self.goal_reached,
            "attempts": self.attempts,
            "steps_taken": int(self.row["steps_taken"] or 0) + self.effects.steps,
            "updated_at": self.moment,
        }

    def _wait(self, node_id: str, outcome: Outcome, error: str | None = None) -> None:
        self.effects.execution = {
            **self._base(node_id),
            "status": "waiting",
            "wake_at": outcome.wake_at,
            "wait_reason": outcome.wait_reason,
            "last_error": error,
            "completed_at": None,
        }

    def _end(self, node_id: str | None) -> None:
        self.effects.execution = {
            **self._base(node_id),
            "status": "goal_reached" if self.goal_reached else "completed",
            "wake_at": None,
            "wait_reason": None,
            "last_error": None,
            "completed_at": self.moment,
        }

    def _fail(self, node_id: str | None, error: str, attempts: int | None) -> None:
        self.effects.execution = {
            **self._base(node_id),
            "status": "failed",
            "wake_at": None,
            "wait_reason": None,
            "last_error": error,
            "completed_at": self.moment,
        }
        if self.test_mode:
            return
        self.effects.dead_letter = {
            "firm_id": self.row["firm_id"],
            "execution_id": self.row["id"],
            "workflow_id": self.row["workflow_id"],
            "node_id": node_id,
            "error": error,
            "attempts": attempts or self.attempts or 1,
            "created_at": self.moment,
        }


def walk(row: dict, state: BatchState, moment: datetime) -> Effects:
    return Walk(row, state, moment).run()

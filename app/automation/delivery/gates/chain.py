"""The gate chain: the one place that decides whether a message may go.

Every outgoing message passes the gates of :data:`CHAIN` in order. A gate
answers :data:`SEND`, :func:`skip` (never to be sent: the step ends
``skipped`` with the reason) or :func:`defer` (not now: held until a
moment, then it passes the chain again). The first answer that is not
``send`` decides; later gates are not asked.

Gates read set-based: :meth:`Gate.prepare` makes one query for the whole
batch of candidates and returns what :meth:`Gate.check` needs per
message, so a gate costs a query per batch, never one per message. A
:class:`GateRun` prepares each gate lazily, the first time a candidate
reaches it, over the whole population of the run, and keeps that state
for the rest of the run (a gate that counts, such as a frequency cap,
counts the messages it lets through in its state).

Where gates run and how a defer is held exactly once: docs/SENDING.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar, Literal

from sqlalchemy import Connection

from app.clock import now

# Where a run happens: "step" when the engine walks a send step (before the
# outbox row is written), "dispatch" right before the hand-over.
Stage = Literal["step", "dispatch"]


@dataclass(frozen=True)
class Verdict:
    action: Literal["send", "skip", "defer"]
    reason: str = ""
    gate: str = ""
    until: datetime | None = None  # a defer's moment to try again (UTC)

    @property
    def sends(self) -> bool:
        return self.action == "send"

    def as_result(self) -> dict:
        """What a flow state's ``action_result`` (and an outbox row's
        ``response``) records of a skip or a defer."""
        result: dict[str, Any] = {"reason": self.reason, "gate": self.gate}
        if self.until is not None:
            result["held_until"] = self.until.isoformat()
        return result


SEND = Verdict("send")


def skip(reason: str, gate: str = "") -> Verdict:
    return Verdict("skip", reason, gate)


def defer(until: datetime, reason: str, gate: str = "") -> Verdict:
    return Verdict("defer", reason, gate, until)


@dataclass
class Candidate:
    """One message about to be written (stage "step") or handed over
    (stage "dispatch"), as plain values."""

    firm_id: int
    channel: str  # email | sms | webhook
    address: str  # the recipient: an e-mail address, a phone number, a URL
    contact_id: int | None = None
    topic_id: int | None = None  # None: the firm's default marketing topic
    workflow_id: int | None = None
    execution_id: int | None = None
    node_id: str = ""
    outbox_id: int | None = None  # stage "dispatch" only
    contact: dict | None = None  # the contact's columns, when the caller has them
    config: Any = None  # the node's parsed configuration, stage "step" only
    moment: datetime = field(default_factory=now)  # the clock of the check
    extra: dict = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        """The address as suppression lists keep it (worked out once: every
        gate and the run's bookkeeping ask for it)."""
        return normalize_address(self.channel, self.address)


def normalize_address(channel: str, address: str) -> str:
    address = (address or "").strip()
    if channel == "email":
        from email.utils import parseaddr

        if "<" in address:
            address = parseaddr(address)[1] or address
        return address.lower()
    if channel == "sms":
        return "".join(ch for ch in address if ch.isdigit() or ch == "+")
    return address


class Gate:
    """One check of the chain. Subclasses set ``name`` (shown with a skip),
    ``channels`` and ``stages`` they apply to, and implement
    :meth:`prepare` (one set-based read) and :meth:`check` (no I/O)."""

    name: ClassVar[str] = ""
    channels: ClassVar[frozenset[str]] = frozenset({"email", "sms"})
    stages: ClassVar[frozenset[str]] = frozenset({"step", "dispatch"})

    def applies(self, candidate: Candidate, stage: Stage) -> bool:
        return stage in self.stages and candidate.channel in self.channels

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> Any:
        return None

    def check(self, candidate: Candidate, state: Any) -> Verdict:
        raise NotImplementedError


CHAIN: list[Gate] = []


def register(gate_class: type[Gate], *, after: str | None = None) -> type[Gate]:
    """Add a gate to the chain, at the end or right after the gate named
    ``after``. Order matters: see docs/SENDING.md."""
    gate = gate_class()
    if any(existing.name == gate.name for existing in CHAIN):
        raise ValueError(f"gate {gate.name!r} registered twice")
    if after is None:
        CHAIN.append(gate)
    else:
        names = [existing.name for existing in CHAIN]
        CHAIN.insert(names.index(after) + 1, gate)
    return gate_class


class GateRun:
    """The chain over one batch: ``population`` is every candidate the run
    may see (the engine's batch contacts, the dispatcher's claimed rows);
    each gate prepares over it once, on first use."""

    def __init__(self, conn: Connection, stage: Stage, population: Iterable[Candidate]):
        self.conn = conn
        self.stage = stage
        self.population = list(population)
        self._known = {_identity(c) for c in self.population}
        self._states: dict[str, Any] = {}

    def _state(self, gate: Gate) -> Any:
        if gate.name not in self._states:
            wanted = [c for c in self.population if gate.applies(c, self.stage)]
            self._states[gate.name] = gate.prepare(self.conn, wanted)
        return self._states[gate.name]

    def check(self, candidate: Candidate) -> Verdict:
        if _identity(candidate) not in self._known:
            # A candidate the run did not foresee (rare): widen the
            # population and let every gate prepare again on next use.
            self.population.append(candidate)
            self._known.add(_identity(candidate))
            self._states.clear()
        for gate in CHAIN:
            if not gate.applies(candidate, self.stage):
                continue
            verdict = gate.check(candidate, self._state(gate))
            if not verdict.sends:
                return verdict
        return SEND


def _identity(candidate: Candidate) -> tuple:
    return (candidate.firm_id, candidate.channel, candidate.key, candidate.contact_id)

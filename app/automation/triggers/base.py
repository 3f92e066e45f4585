"""What a trigger type is made of (:class:`TriggerType`, its configuration
base) and the table the types register in.

The family modules of ``kinds/`` register their types on these;
:mod:`app.automation.triggers.registry` imports the families and answers
lookups, so a family never imports the registry that imports it
(docs/ARCHITECTURE.md "Adding a node type or a trigger type").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ConfigDict

from app.automation.rules.schema import HasRules

if TYPE_CHECKING:
    from app.models import PublishedTrigger

# (configuration, event data) -> does the event pass the trigger's filter?
Filter = Callable[[dict, dict], bool]
# (trigger, since, until) -> (occurrence, contact ids) due in (since, until].
Runner = Callable[["PublishedTrigger", datetime, datetime], Iterable[tuple[str, list[int]]]]


class TriggerConfig(HasRules):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class TriggerType:
    key: str
    label: str
    family: str
    Config: type[TriggerConfig]
    description: str = ""
    # "event": the bus starts it when an event passes ``filter``;
    # "schedule": the scheduler asks ``runner`` what fell due;
    # "direct": a user or an API call starts it.
    driven_by: Literal["event", "schedule", "direct"] = "event"
    filter: Filter | None = None
    runner: Runner | None = None
    # The contact rules that mean the same as the filter, for contacts
    # already there ("tag vip added" -> "has tag vip").
    existing_rules: Callable[[dict], list[dict]] | None = None
    # A scheduled type's "never fires again after ``since``" (its cursor
    # then stays where it is).
    done: Callable[[PublishedTrigger, datetime], bool] | None = None
    # Save-time checks beyond the schema (an audience that is not the
    # firm's): configuration -> {field: [messages]}, ``{}`` when fine.
    check: Callable[[dict], dict[str, list[str]]] | None = None

    families: ClassVar[tuple[str, ...]] = (
        "Forms",
        "Email",
        "Site",
        "CRM",
        "Deals",
        "Score",
        "Date",
        "Manual",
    )

    def __post_init__(self):
        if self.family not in self.families:
            raise ValueError(f"trigger type {self.key!r}: unknown family {self.family!r}")
        if (self.driven_by == "event") != (self.filter is not None):
            raise ValueError(f"trigger type {self.key!r}: an event filter iff event-driven")
        if (self.driven_by == "schedule") != (self.runner is not None):
            raise ValueError(f"trigger type {self.key!r}: a runner iff scheduled")

    @property
    def scheduled(self) -> bool:
        return self.driven_by == "schedule"


# The registered types by key, in the order the family modules register
# them; read it through the registry, which has imported every family.
TRIGGER_TYPES: dict[str, TriggerType] = {}


def register(trigger_type: TriggerType) -> TriggerType:
    if trigger_type.key in TRIGGER_TYPES:
        raise ValueError(f"trigger type {trigger_type.key!r} registered twice")
    TRIGGER_TYPES[trigger_type.key] = trigger_type
    return trigger_type


def unregister(key: str) -> None:
    """Forget a type (tests that register a throwaway one)."""
    TRIGGER_TYPES.pop(key, None)

"""The shape of a rule group (docs/CONTRACT.md "Configuration")."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

FIELD_OPS = (
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "not_contains",
    "starts_with",
    "in",
    "is_set",
    "is_not_set",
)
FIELD_PREFIXES = ("contact.", "deal.", "context.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldRule(_Strict):
    field: str
    op: Literal[FIELD_OPS]  # type: ignore[valid-type]
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if not value.startswith(FIELD_PREFIXES) or value.endswith("."):
            raise ValueError("must start with contact., deal. or context. and name a field")
        return value


class TagRule(_Strict):
    tag: str = Field(min_length=1)
    op: Literal["has", "has_not"] = "has"


# An id is a positive BIGINT: a larger one cannot exist, and the drivers
# refuse to bind it (SQLite: OverflowError, a 500).
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ListRule(_Strict):
    list: RowId
    op: Literal["in", "not_in"] = "in"


class TopicRule(_Strict):
    topic: RowId
    op: Literal["subscribed", "not_subscribed"] = "subscribed"


class EventRule(_Strict):
    event: Literal["email_opened", "email_clicked"]
    node: str | None = None
    # Only events of the last ``within_days`` days count (docs/CONTRACT.md
    # "Experiments, audiences, forecasts, integrations").
    within_days: int | None = Field(default=None, ge=1, le=3650)
    op: Literal["happened", "not_happened"] = "happened"


class AudienceRule(_Strict):
    audience: RowId
    op: Literal["in", "not_in"] = "in"


class RuleGroup(_Strict):
    match: Literal["all", "any"] = "all"
    rules: list[Rule] = Field(default_factory=list)


def _rule_kind(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("rules", "field", "tag", "list", "event", "topic", "audience"):
            if key in value:
                return {"rules": "group"}.get(key, key)
    if isinstance(value, BaseModel):
        return {
            RuleGroup: "group",
            FieldRule: "field",
            TagRule: "tag",
            ListRule: "list",
            EventRule: "event",
            TopicRule: "topic",
            AudienceRule: "audience",
        }[type(value)]
    return "field"


Rule = Annotated[
    Union[  # noqa: UP007 (a tagged union reads better spelled out)
        Annotated[RuleGroup, Tag("group")],
        Annotated[FieldRule, Tag("field")],
        Annotated[TagRule, Tag("tag")],
        Annotated[ListRule, Tag("list")],
        Annotated[EventRule, Tag("event")],
        Annotated[TopicRule, Tag("topic")],
        Annotated[AudienceRule, Tag("audience")],
    ],
    Discriminator(_rule_kind),
]

RuleGroup.model_rebuild()


class HasRules(BaseModel):
    """Mixed into configurations that carry ``match``/``rules`` at top level."""

    match: Literal["all", "any"] = "all"
    rules: list[Rule] = Field(default_factory=list)

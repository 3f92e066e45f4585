"""Trigger types of audiences (saved segments): a contact entered or left
one (app/automation/audiences/membership.py emits both, once per change)."""

from __future__ import annotations

from pydantic import Field

from app.automation.rules.references import UNKNOWN_AUDIENCE, audience_known
from app.automation.triggers.base import TriggerConfig, TriggerType, register
from app.automation.triggers.filters import num


class AudienceConfig(TriggerConfig):
    audience: int = Field(description="the audience's id")


def _known(config: dict) -> dict[str, list[str]]:
    """Only the firm's own audiences (another firm's id is unknown)."""
    return {} if audience_known(config.get("audience")) else {"audience": [UNKNOWN_AUDIENCE]}


def _audience(config: dict, data: dict) -> bool:
    return num(data.get("audience")) == num(config.get("audience"))


register(
    TriggerType(
        "segment_entered",
        "Entered an audience",
        "CRM",
        AudienceConfig,
        "A contact starts matching an audience's rules.",
        filter=_audience,
        check=_known,
        existing_rules=lambda c: (
            [{"audience": c["audience"], "op": "in"}] if c.get("audience") else []
        ),
    )
)

register(
    TriggerType(
        "segment_left",
        "Left an audience",
        "CRM",
        AudienceConfig,
        "A contact stops matching an audience's rules.",
        filter=_audience,
        check=_known,
    )
)

"""Trigger types a person or a program starts: manual and API.

``trigger_manual`` and ``trigger_api`` (app/automation/triggers/helpers.py)
start the chosen workflow directly; no event or schedule is involved.
"""

from __future__ import annotations

from app.automation.triggers.base import TriggerConfig, TriggerType, register

register(
    TriggerType(
        "manual",
        "Manual",
        "Manual",
        TriggerConfig,
        "Started by a user for chosen contacts.",
        driven_by="direct",
    )
)

register(
    TriggerType(
        "api",
        "API",
        "Manual",
        TriggerConfig,
        "Started by an API call.",
        driven_by="direct",
    )
)

"""A firm's pacing settings (docs/CONTRACT.md "Sending safely"): frequency caps,
rate limits, the automatic pause; and resume. Everyone reads them; admins
change them. The checks and words are in app.automation.delivery.pacing."""

from __future__ import annotations

from typing import Any

from flask import g
from pydantic import Field

from app.api.core import Input, Output, endpoint
from app.api.errors import ApiError, validation_error
from app.automation.delivery import pacing
from app.automation.delivery import sending_settings as sending_ops
from app.extensions import db
from app.models import Firm

TAG = "Settings"
RULE = "/settings/sending/"


class SendingSettingsIn(Input):
    frequency_caps: Any = Field(
        default=None,
        description='caps on marketing e-mails per contact: [{"max": 3, "per_days": 7}]',
    )
    cap_action: Any = Field(default=None, description="defer (default) or skip")
    max_per_second: Any = Field(default=None, description="firm-wide messages per second")
    domain_limits: Any = Field(default=None, description='per recipient domain: {"gmail.com": 20}')
    warmup: Any = Field(
        default=None,
        description='a new sending domain\'s daily allowance: {"start": 50, "factor": 2, '
        '"max": 10000, "started": "2026-12-01"} (started: today when left out)',
    )
    pause_on_bounce_rate: Any = Field(default=None, description='{"percent": 5, "window": 200}')
    paused: Any = Field(default=None, description="pause (true) or resume (false) by hand")


class SendingSettingsOut(Output):
    frequency_caps: list[dict[str, Any]]
    cap_action: str
    max_per_second: int | None
    domain_limits: dict[str, int]
    warmup: dict[str, Any] | None
    pause_on_bounce_rate: dict[str, Any] | None
    paused: bool
    paused_reason: str | None
    paused_at: str | None
    preview: list[str] = Field(description="the settings in plain words")


def _firm() -> Firm:
    return db.session.get(Firm, g.user.firm_id)


def _answer(firm: Firm) -> dict:
    settings = pacing.settings_of(firm.settings)
    return {**settings, "preview": pacing.preview(db.session.connection(), firm.id, firm.settings)}


def _admin() -> None:
    if not g.user.is_admin:
        raise ApiError(403, "forbidden", "only admins may change the sending settings")


@endpoint(RULE, tag=TAG, summary="The firm's sending settings", response=SendingSettingsOut)
def sending_settings():
    return _answer(_firm())


@endpoint(
    RULE,
    "PATCH",
    tag=TAG,
    summary="Change caps, rate limits or the automatic pause (admins)",
    body=SendingSettingsIn,
    response=SendingSettingsOut,
    errors=(422,),
)
def update_sending_settings(body: SendingSettingsIn):
    _admin()
    try:
        # The settings page's change too (app/automation/delivery/sending_settings.py).
        firm = sending_ops.change(_firm(), body.model_dump(exclude_unset=True), by=g.user.email)
    except pacing.SettingsError as exc:
        db.session.rollback()
        raise validation_error({exc.field: [exc.message]}, 422, str(exc)) from None
    return _answer(firm)


@endpoint(
    RULE + "resume/",
    "POST",
    tag=TAG,
    summary="Resume sending after a pause; what was held goes now, once (admins)",
    response=SendingSettingsOut,
)
def resume_sending():
    _admin()
    firm = _firm()
    sending_ops.resume(firm)
    return _answer(firm)

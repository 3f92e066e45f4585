"""The firm's webhook signing secret (docs/CONTRACT.md "Operations"): admins
read it, to set up receivers, and rotate it; after a rotation deliveries
carry a signature with the old secret too for 24 hours."""

from __future__ import annotations

from datetime import datetime

from flask import g
from pydantic import Field

from app.api.core import Output, endpoint
from app.api.errors import ApiError
from app.automation.delivery import webhook_secret
from app.extensions import db
from app.models import Firm

TAG = "Settings"
RULE = "/settings/webhooks/"


class WebhookSettingsOut(Output):
    signing_secret: str = Field(
        description="Standard Webhooks secret (whsec_...): verify deliveries with it"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="after a rotation, until when deliveries are also signed with the old secret"
    )


def _admins_firm() -> Firm:
    if not g.user.is_admin:
        raise ApiError(403, "forbidden", "only admins may see or rotate the signing secret")
    return db.session.get(Firm, g.user.firm_id)


def _answer(firm: Firm) -> dict:
    return {
        "signing_secret": firm.webhook_secret,
        "previous_secret_expires_at": firm.previous_secret_expires_at(),
    }


@endpoint(
    RULE,
    tag=TAG,
    summary="The webhook signing secret (admins)",
    response=WebhookSettingsOut,
)
def webhook_settings():
    return _answer(_admins_firm())


@endpoint(
    RULE + "rotate/",
    "POST",
    tag=TAG,
    summary="Rotate the webhook signing secret; the old one signs too for 24 h",
    response=WebhookSettingsOut,
)
def rotate_webhook_secret():
    return _answer(webhook_secret.rotate(_admins_firm()))

"""Making and removing REST hook subscriptions (docs/CONTRACT.md "REST hooks")."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select

from app.automation.delivery.webhook import UnsafeURL, check_url_syntax
from app.automation.hooks.facts import EVENTS, WORKFLOW_EVENTS
from app.clock import now
from app.extensions import db
from app.models import HookDelivery, HookSubscription, Workflow
from app.models.audit import record
from app.tenancy import current_actor

MAX_PER_FIRM = 200


class HookError(ValueError):
    """A refused subscription; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


def check_target(url: str) -> str:
    """The target URL as saved, or :class:`HookError`: http(s), no
    credentials, no literal private address unless WEBHOOK_ALLOW_PRIVATE
    (the webhook step's save-time check, docs/SENDING.md); the send checks
    again after resolving the name."""
    url = (url or "").strip()
    if len(url) > 2000:
        raise HookError("the URL is longer than 2,000 characters", "target_url")
    try:
        check_url_syntax(url, bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE")))
    except UnsafeURL as exc:
        raise HookError(str(exc), "target_url") from None
    return url


def subscribe(target_url: str, event: str, workflow: Workflow | None = None) -> HookSubscription:
    """A new active subscription of the current firm; the caller commits.
    ``workflow`` was loaded under the firm (another firm's is not found)."""
    if event not in EVENTS:
        raise HookError(f"unknown event; one of {', '.join(EVENTS)}", "event")
    url = check_target(target_url)
    if workflow is not None and event not in WORKFLOW_EVENTS:
        raise HookError(f"{event} is not about a workflow; leave workflow out", "workflow")
    count = db.session.scalar(
        select(func.count()).select_from(HookSubscription).where(HookSubscription.active)
    )
    if count >= MAX_PER_FIRM:
        raise HookError(f"a firm may have at most {MAX_PER_FIRM} subscriptions", "target_url")
    subscription = HookSubscription(
        target_url=url,
        event=event,
        workflow_id=workflow.id if workflow is not None else None,
        created_by_id=current_actor()[0],
    )
    db.session.add(subscription)
    db.session.flush()
    record("hook.subscribed", subscription, data={"event": event, "target_url": url})
    return subscription


def unsubscribe(subscription: HookSubscription) -> None:
    """Remove a subscription and its deliveries; the caller commits."""
    record(
        "hook.removed",
        subscription,
        data={"event": subscription.event, "target_url": subscription.target_url},
    )
    db.session.delete(subscription)


def end(subscription_id: int, reason: str) -> None:
    """The receiver asked us to stop (410 Gone): the subscription is ended,
    recorded with why, and its pending deliveries are dropped. Commits."""
    subscription = db.session.get(HookSubscription, subscription_id)
    if subscription is None or not subscription.active:
        return
    subscription.active = False
    subscription.ended_at = now()
    subscription.ended_reason = reason
    db.session.execute(
        HookDelivery.__table__.update()
        .where(
            HookDelivery.subscription_id == subscription_id,
            HookDelivery.status == "pending",
        )
        .values(status="gone", next_attempt_at=None)
    )
    record("hook.ended", subscription, data={"reason": reason}, actor="receiver")
    db.session.commit()


def active() -> list[HookSubscription]:
    """The current firm's active subscriptions, newest first."""
    stmt = (
        select(HookSubscription).where(HookSubscription.active).order_by(HookSubscription.id.desc())
    )
    return list(db.session.scalars(stmt))


def attach_last_delivery(items: list[HookSubscription]) -> list[HookSubscription]:
    """Set ``last_delivery_status`` and ``last_delivery_at`` on each
    subscription (its newest delivery), in one query."""
    ids = [item.id for item in items]
    latest: dict[int, HookDelivery] = {}
    if ids:
        newest = (
            select(func.max(HookDelivery.id))
            .where(HookDelivery.subscription_id.in_(ids))
            .group_by(HookDelivery.subscription_id)
        )
        rows = db.session.scalars(select(HookDelivery).where(HookDelivery.id.in_(newest)))
        latest = {row.subscription_id: row for row in rows}
    for item in items:
        row = latest.get(item.id)
        item.last_delivery_status = row.status if row is not None else None
        item.last_delivery_at = (row.last_attempt_at or row.created_at) if row is not None else None
    return items


def recent_deliveries(limit: int = 50) -> list[HookDelivery]:
    """The current firm's newest deliveries, with their subscriptions."""
    stmt = select(HookDelivery).order_by(HookDelivery.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))

"""REST hooks (docs/CONTRACT.md "REST hooks"): subscriptions that Zapier,
Make and the like create and delete, and a sample body per event (their
"perform list")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from app.api.access import get_or_404
from app.api.core import DbId, Input, Output, endpoint
from app.api.errors import ApiError, validation_error
from app.api.graph import referenced
from app.api.pagination import PageQuery, page_of, paginate
from app.automation.hooks import payloads, subscriptions
from app.extensions import db
from app.models import HOOK_EVENTS, HookSubscription, Workflow

TAG = "REST hooks"
LIST = "/hooks/subscriptions/"
ONE = LIST + "<int:subscription_id>/"

HookEvent = Literal[HOOK_EVENTS]  # type: ignore[valid-type]


class SubscriptionIn(Input):
    target_url: str = Field(
        max_length=2000, description="where deliveries are POSTed (http:// or https://)"
    )
    event: HookEvent = Field(description="the event to receive")
    workflow: DbId | None = Field(
        default=None, description="only this workflow's executions (execution and goal events)"
    )


class SubscriptionOut(Output):
    id: int
    target_url: str
    event: str
    workflow: int | None = Field(validation_alias="workflow_id")
    created_at: datetime
    last_delivery_status: str | None = Field(
        default=None, description="pending, delivered, dead or gone; null before the first"
    )
    last_delivery_at: datetime | None = None


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(
        description="Standard Webhooks secret (whsec_...) signing this subscription's deliveries;"
        " shown only here"
    )


class SampleOut(Output):
    event: str
    occurred_at: str
    data: dict


class SamplesOut(Output):
    results: list[SampleOut]
    next: str | None = None


@endpoint(
    LIST,
    "POST",
    tag=TAG,
    summary="Subscribe a URL to an event",
    body=SubscriptionIn,
    response=SubscriptionCreated,
    status=201,
    errors=(422,),
)
def create_subscription(body: SubscriptionIn):
    """Deliveries are JSON ``{"event", "occurred_at", "data"}``, signed as
    Standard Webhooks with the ``secret`` answered here, retried with
    backoff; a 410 answer ends the subscription."""
    workflow = referenced(Workflow, body.workflow, "workflow")
    try:
        subscription = subscriptions.subscribe(body.target_url, body.event, workflow)
    except subscriptions.HookError as exc:
        db.session.rollback()
        raise validation_error({exc.field: [exc.message]}, status=422) from None
    db.session.commit()
    subscription.last_delivery_status = subscription.last_delivery_at = None
    return subscription


@endpoint(
    LIST,
    tag=TAG,
    summary="List the active subscriptions",
    query=PageQuery,
    response=page_of(SubscriptionOut),
)
def list_subscriptions(query: PageQuery):
    stmt = select(HookSubscription).where(HookSubscription.active)
    page = paginate(stmt, HookSubscription.id, query)
    subscriptions.attach_last_delivery(page["results"])
    return page


def _load(subscription_id: int) -> HookSubscription:
    subscription = get_or_404(HookSubscription, subscription_id, what="subscription")
    if not subscription.active:
        raise ApiError(404, "not_found", "subscription not found")
    return subscription


@endpoint(ONE, tag=TAG, summary="Get a subscription", response=SubscriptionOut)
def get_subscription(subscription_id: int):
    return subscriptions.attach_last_delivery([_load(subscription_id)])[0]


@endpoint(ONE, "DELETE", tag=TAG, summary="Remove a subscription", status=204)
def delete_subscription(subscription_id: int):
    subscriptions.unsubscribe(_load(subscription_id))
    db.session.commit()


@endpoint(
    "/hooks/samples/<event>/",
    tag=TAG,
    summary="A sample delivery body of an event",
    response=SamplesOut,
)
def hook_sample(event: str):
    """What a delivery of ``event`` looks like, with made-up values (the
    "perform list" of a Zapier trigger)."""
    if event not in HOOK_EVENTS:
        raise ApiError(404, "not_found", f"no such event; one of {', '.join(HOOK_EVENTS)}")
    return {"results": [payloads.sample(event)], "next": None}

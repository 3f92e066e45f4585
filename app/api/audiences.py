"""Audiences: saved dynamic segments, their live count and contacts, and
"enroll this audience now" (docs/CONTRACT.md "JSON API", "Audiences")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.access import get_or_404
from app.api.core import Input, Output, endpoint
from app.api.errors import not_found, refused, validation_error
from app.api.pagination import PageQuery, decode_cursor, encode_cursor, page_of, paginate
from app.api.schemas.crm import ContactOut
from app.automation.audiences import counting, enroll, saving
from app.automation.crm.errors import CrmError
from app.automation.delivery import consent
from app.extensions import db
from app.models import Audience, AudienceEnrollment, Contact

TAG = "Audiences"
BASE = "/audiences/"
ONE = BASE + "<int:audience_id>/"

# Rules are checked by the domain (audiences/saving.check_rules), so a bad
# rule is one 422 naming it (``rules[0].op``) on every path that saves one.
_RULES = {"type": "array", "items": {"type": "object"}}


class AudienceCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    match: str = Field(default="all", json_schema_extra={"enum": ["all", "any"]})
    rules: Any = Field(default_factory=list, json_schema_extra=_RULES)


class AudienceUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    match: str | None = Field(default=None, json_schema_extra={"enum": ["all", "any"]})
    rules: Any = Field(default=None, json_schema_extra=_RULES)


class AudienceOut(Output):
    id: int
    name: str
    match: str
    rules: list[dict]
    timed: bool = Field(description="has a time window: re-checked as time passes")
    created_at: datetime
    updated_at: datetime


class CountOut(Output):
    count: int


class EnrollIn(Input):
    # Checked by the domain: not an active workflow of the firm is 422.
    workflow: Any = Field(json_schema_extra={"type": "integer"})


class EnrollmentOut(Output):
    id: int
    audience: int
    workflow: int
    status: str = Field(description="queued, running, done or failed")
    percent: int
    total: int | None
    processed: int
    enrolled: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _refused(exc: CrmError):
    db.session.rollback()
    if exc.conflict:
        return refused(exc)
    return validation_error({k: [v] for k, v in exc.errors.items()}, status=422)


@endpoint(BASE, tag=TAG, summary="List audiences", query=PageQuery, response=page_of(AudienceOut))
def list_audiences(query: PageQuery):
    return paginate(select(Audience), Audience.id, query)


@endpoint(
    BASE,
    "POST",
    tag=TAG,
    summary="Create an audience",
    body=AudienceCreate,
    response=AudienceOut,
    status=201,
    errors=(409, 422),
)
def create_audience(body: AudienceCreate):
    try:
        return saving.create_audience(body.name, body.match, body.rules)
    except CrmError as exc:
        raise _refused(exc) from None


@endpoint(ONE, tag=TAG, summary="Get an audience", response=AudienceOut, errors=(404,))
def get_audience(audience_id: int):
    return get_or_404(Audience, audience_id, what="audience")


@endpoint(
    ONE,
    "PATCH",
    tag=TAG,
    summary="Change an audience",
    body=AudienceUpdate,
    response=AudienceOut,
    errors=(404, 409, 422),
)
def update_audience(audience_id: int, body: AudienceUpdate):
    audience = get_or_404(Audience, audience_id, what="audience")
    try:
        return saving.update_audience(audience, body.name, body.match, body.rules)
    except CrmError as exc:
        raise _refused(exc) from None


@endpoint(ONE, "DELETE", tag=TAG, summary="Delete an audience", status=204, errors=(404, 409))
def delete_audience(audience_id: int):
    """409 while another audience's rules or a workflow's segment trigger
    names it."""
    audience = get_or_404(Audience, audience_id, what="audience")
    try:
        saving.delete_audience(audience)
    except CrmError as exc:
        raise _refused(exc) from None


@endpoint(
    ONE + "count/", tag=TAG, summary="How many contacts match now", response=CountOut, errors=(404,)
)
def count_audience(audience_id: int):
    audience = get_or_404(Audience, audience_id, what="audience")
    return {"count": counting.count(audience.rule_group)}


@endpoint(
    ONE + "contacts/",
    tag=TAG,
    summary="The contacts matching now",
    query=PageQuery,
    response=page_of(ContactOut),
    errors=(404,),
)
def audience_contacts(audience_id: int, query: PageQuery):
    audience = get_or_404(Audience, audience_id, what="audience")
    after = decode_cursor(query.cursor) if query.cursor else 0
    ids = counting.page_ids(audience.rule_group, after, query.limit + 1)
    shown = ids[: query.limit]
    stmt = (
        select(Contact)
        .where(Contact.id.in_(shown))
        .options(selectinload(Contact.tags), selectinload(Contact.lists))
        .order_by(Contact.id)
    )
    results = list(db.session.scalars(stmt)) if shown else []
    consent.attach(results)
    return {
        "results": results,
        "next": encode_cursor(shown[-1]) if len(ids) > query.limit else None,
    }


@endpoint(
    ONE + "enroll/",
    "POST",
    tag=TAG,
    summary="Enroll the audience's contacts into a workflow now",
    body=EnrollIn,
    response=EnrollmentOut,
    status=202,
    errors=(404, 422),
)
def enroll_audience(audience_id: int, body: EnrollIn):
    """Queues a job that starts every matching contact in the workflow, in
    batches; poll ``GET .../enroll/{job}/`` for its progress."""
    audience = get_or_404(Audience, audience_id, what="audience")
    try:
        job = enroll.start_enrollment(audience, body.workflow, user=g.user)
    except CrmError as exc:
        raise _refused(exc) from None
    return enroll.as_json(job)


@endpoint(
    ONE + "enroll/<int:enrollment_id>/",
    tag=TAG,
    summary="An enrollment job's progress",
    response=EnrollmentOut,
    errors=(404,),
)
def get_enrollment(audience_id: int, enrollment_id: int):
    audience = get_or_404(Audience, audience_id, what="audience")
    job = get_or_404(AudienceEnrollment, enrollment_id, what="enrollment")
    if job.audience_id != audience.id:
        raise not_found("enrollment")
    return enroll.as_json(job)

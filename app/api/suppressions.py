"""The suppression list: ``/api/v1/suppressions/`` (docs/SENDING.md)."""

from __future__ import annotations

from app.api.access import get_or_404
from app.api.core import endpoint
from app.api.errors import ApiError, validation_error
from app.api.pagination import page_of, paginate
from app.api.schemas.sending import SuppressionIn, SuppressionOut, SuppressionQuery
from app.automation.delivery import suppressions
from app.extensions import db
from app.models import Suppression


@endpoint(
    "/suppressions/",
    tag="Suppressions",
    summary="List suppressed addresses",
    query=SuppressionQuery,
    response=page_of(SuppressionOut),
)
def list_suppressions(query: SuppressionQuery):
    stmt = suppressions.search(
        query.email, query.q, query.reason, phone=query.phone, channel=query.channel
    )
    page = paginate(stmt, Suppression.id, query, newest_first=True)
    page["results"] = [suppressions.entry_dict(entry) for entry in page["results"]]
    return page


@endpoint(
    "/suppressions/",
    "POST",
    tag="Suppressions",
    summary="Suppress an address",
    body=SuppressionIn,
    response=SuppressionOut,
    status=201,
    errors=(409,),
)
def create_suppression(body: SuppressionIn):
    """The address gets no e-mail (or the number no SMS) from any workflow
    or topic, transactional ones included, until the entry is removed."""
    if (body.email is None) == (body.phone is None):
        raise validation_error({"email": ["give either email or phone"]})
    channel, field = ("email", "email") if body.email is not None else ("sms", "phone")
    try:
        entry, created = suppressions.add(
            None,
            body.email if channel == "email" else body.phone,
            body.reason,
            channel=channel,
            note=body.note,
            source="api",
        )
    except suppressions.SuppressionError as exc:
        raise validation_error({exc.field: [exc.message]}) from None
    if not created:
        db.session.rollback()
        raise ApiError(
            409,
            "conflict",
            "this address is suppressed already",
            fields={field: ["already suppressed"]},
        )
    db.session.commit()
    return suppressions.entry_dict(entry)


@endpoint(
    "/suppressions/<int:suppression_id>/",
    tag="Suppressions",
    summary="Get a suppression",
    response=SuppressionOut,
)
def get_suppression(suppression_id: int):
    return suppressions.entry_dict(get_or_404(Suppression, suppression_id, what="suppression"))


@endpoint(
    "/suppressions/<int:suppression_id>/",
    "DELETE",
    tag="Suppressions",
    summary="Remove an address from the list",
    status=204,
)
def delete_suppression(suppression_id: int):
    suppressions.remove(get_or_404(Suppression, suppression_id, what="suppression"))
    db.session.commit()

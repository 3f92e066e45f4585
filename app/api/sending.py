"""Topics (``/api/v1/topics/``) and sending domains
(``/api/v1/sending-domains/``); see docs/SENDING.md."""

from __future__ import annotations

from sqlalchemy import select

from app.api.access import get_or_404
from app.api.core import endpoint
from app.api.errors import ApiError
from app.api.pagination import PageQuery, page_of, paginate
from app.api.schemas.sending import (
    SendingDomainIn,
    SendingDomainOut,
    SendingDomainUpdate,
    TopicIn,
    TopicOut,
    TopicUpdate,
)
from app.automation.delivery import sending_domains, topics
from app.extensions import db
from app.models import SendingDomain, Topic
from app.models.audit import record


def _topic_error(exc: topics.TopicError):
    status = 409 if "exists" in exc.message else 400
    code = "conflict" if status == 409 else "validation_error"
    return ApiError(status, code, exc.message, fields={exc.field: [exc.message]})


@endpoint(
    "/topics/", tag="Topics", summary="List topics", query=PageQuery, response=page_of(TopicOut)
)
def list_topics(query: PageQuery):
    return paginate(select(Topic), Topic.id, query)


@endpoint(
    "/topics/",
    "POST",
    tag="Topics",
    summary="Create a topic",
    body=TopicIn,
    response=TopicOut,
    status=201,
    errors=(409,),
)
def create_topic(body: TopicIn):
    """The first marketing topic becomes the firm's default (the topic of a
    send_email step that names none)."""
    try:
        topic = topics.save_topic(None, body.model_dump(exclude_none=True))
    except topics.TopicError as exc:
        raise _topic_error(exc) from None
    db.session.commit()
    return topic


@endpoint("/topics/<int:topic_id>/", tag="Topics", summary="Get a topic", response=TopicOut)
def get_topic(topic_id: int):
    return get_or_404(Topic, topic_id, what="topic")


@endpoint(
    "/topics/<int:topic_id>/",
    "PATCH",
    tag="Topics",
    summary="Update a topic",
    body=TopicUpdate,
    response=TopicOut,
    errors=(409,),
)
def update_topic(topic_id: int, body: TopicUpdate):
    topic = get_or_404(Topic, topic_id, what="topic")
    try:
        topics.save_topic(topic, body.model_dump(exclude_unset=True, exclude_none=True))
    except topics.TopicError as exc:
        raise _topic_error(exc) from None
    db.session.commit()
    return topic


@endpoint("/topics/<int:topic_id>/", "DELETE", tag="Topics", summary="Delete a topic", status=204)
def delete_topic(topic_id: int):
    """Steps that named it send under the firm's default marketing topic."""
    topic = get_or_404(Topic, topic_id, what="topic")
    record("topic.deleted", topic, data={"name": topic.name})
    db.session.delete(topic)
    db.session.commit()


def _domain_error(exc: sending_domains.DomainError):
    code = "conflict" if exc.status == 409 else "validation_error"
    return ApiError(exc.status, code, exc.message, fields={exc.field: [exc.message]})


@endpoint(
    "/sending-domains/",
    tag="Sending domains",
    summary="List sending domains",
    query=PageQuery,
    response=page_of(SendingDomainOut),
)
def list_domains(query: PageQuery):
    page = paginate(select(SendingDomain), SendingDomain.id, query)
    page["results"] = [sending_domains.as_dict(entry) for entry in page["results"]]
    return page


@endpoint(
    "/sending-domains/",
    "POST",
    tag="Sending domains",
    summary="Register a sending domain",
    body=SendingDomainIn,
    response=SendingDomainOut,
    status=201,
    errors=(409,),
)
def create_domain(body: SendingDomainIn):
    """``from_email`` may then use this domain (or a subdomain of it), and
    mail from it is DKIM-signed. The private key is never shown again:
    publish ``dns_record``."""
    try:
        entry = sending_domains.register(body.domain, body.dkim_selector, body.dkim_private_key)
    except sending_domains.DomainError as exc:
        db.session.rollback()
        raise _domain_error(exc) from None
    db.session.commit()
    return sending_domains.as_dict(entry)


@endpoint(
    "/sending-domains/<int:domain_id>/",
    tag="Sending domains",
    summary="Get a sending domain",
    response=SendingDomainOut,
)
def get_domain(domain_id: int):
    return sending_domains.as_dict(get_or_404(SendingDomain, domain_id, what="sending domain"))


@endpoint(
    "/sending-domains/<int:domain_id>/",
    "PATCH",
    tag="Sending domains",
    summary="Change the DKIM selector or key",
    body=SendingDomainUpdate,
    response=SendingDomainOut,
)
def update_domain(domain_id: int, body: SendingDomainUpdate):
    entry = get_or_404(SendingDomain, domain_id, what="sending domain")
    try:
        sending_domains.change_key(entry, body.dkim_selector, body.dkim_private_key)
    except sending_domains.DomainError as exc:
        db.session.rollback()
        raise _domain_error(exc) from None
    db.session.commit()
    return sending_domains.as_dict(entry)


@endpoint(
    "/sending-domains/<int:domain_id>/",
    "DELETE",
    tag="Sending domains",
    summary="Remove a sending domain",
    status=204,
)
def delete_domain(domain_id: int):
    sending_domains.remove(get_or_404(SendingDomain, domain_id, what="sending domain"))
    db.session.commit()

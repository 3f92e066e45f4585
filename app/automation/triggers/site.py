"""Site visits from the tracking snippet.

Every beacon becomes a ``SiteVisit`` row (URL, referrer and user agent as
plain text, never interpreted). A visit tied to a contact by the ``atv``
cookie also fires ``page_visited`` (page views) and ``site_activity``
(every beacon); earlier anonymous visits of the same browser are then
attributed to the contact as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import update

from app.automation.triggers.bus import emit
from app.extensions import db
from app.models import Contact, SiteVisit
from app.tenancy import firm_context

MAX_URL = 2000
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KIND = re.compile(r"^[A-Za-z0-9_.:-]{1,50}$")


class BadBeacon(ValueError):
    """The beacon's body does not describe a page view."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class Beacon:
    url: str
    referrer: str
    visitor: str
    kind: str


def parse_beacon(body: dict) -> Beacon:
    url = str(body.get("url") or "").strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL:
        raise BadBeacon("url", "must be an http(s) address of at most 2000 characters")
    referrer = str(body.get("referrer") or "").strip()[:MAX_URL]
    visitor = str(body.get("visitor") or "").strip()
    if visitor and not _VISITOR.match(visitor):
        raise BadBeacon("visitor", "must be 1-64 letters, digits, '-' or '_'")
    kind = str(body.get("kind") or "page_view").strip()
    if not _KIND.match(kind):
        raise BadBeacon("kind", "must be 1-50 letters, digits or _.:-")
    return Beacon(url=url, referrer=referrer, visitor=visitor, kind=kind)


def record_visit(
    firm_id: int, beacon: Beacon, contact_id: int | None, user_agent: str
) -> tuple[SiteVisit, list[int]]:
    """Store the visit; fire the site triggers when the contact is known.

    Returns the visit and the executions started. ``contact_id`` comes from
    a signed cookie but is checked again here: the contact must belong to
    ``firm_id`` and still exist."""
    with firm_context(firm_id):
        if contact_id is not None and db.session.get(Contact, contact_id) is None:
            contact_id = None
        visit = SiteVisit(
            firm_id=firm_id,
            contact_id=contact_id,
            visitor_id=beacon.visitor or (f"c{contact_id}" if contact_id else "anonymous"),
            url=beacon.url,
            referrer=beacon.referrer,
            user_agent=(user_agent or "")[:1000],
        )
        db.session.add(visit)
        db.session.flush()
        if contact_id is not None and beacon.visitor:
            db.session.execute(
                update(SiteVisit)
                .where(SiteVisit.visitor_id == beacon.visitor, SiteVisit.contact_id.is_(None))
                .values(contact_id=contact_id)
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        visit_id = visit.id
        started: list[int] = []
        if contact_id is not None:
            data = {
                "url": beacon.url,
                "referrer": beacon.referrer,
                "kind": beacon.kind,
                "visit_id": visit_id,
            }
            if beacon.kind == "page_view":
                started += emit(
                    firm_id, "page_visited", contact_id, data, event_id=f"visit:{visit_id}",
                    source="site",
                )  # fmt: skip
            started += emit(
                firm_id, "site_activity", contact_id, data, event_id=f"visit:{visit_id}:activity",
                source="site",
            )  # fmt: skip
        return db.session.get(SiteVisit, visit_id), started

"""The attack sweeps' view of the app: every route of ``app.url_map``, the
public allowlist, one firm-owned object per URL parameter, and a snapshot
of every table to prove "nothing changed".

The sweeps are generated from ``url_map``: a new route is attacked without
editing them. A new route that is public must be added to :data:`PUBLIC`;
a new URL parameter must be added to :func:`make_world` (the sweeps fail
naming it until it is).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from app.extensions import db
from app.models import (
    ApiToken,
    ApprovalRequest,
    Audience,
    AudienceEnrollment,
    ContactImport,
    ContactList,
    Deal,
    Form,
    HookSubscription,
    OutboxMessage,
    SendingDomain,
    Suppression,
    Tag,
    Task,
    Topic,
    WorkflowAnalytics,
    WorkflowComment,
    WorkflowForecast,
    WorkflowGoal,
)
from app.tenancy import firm_context
from tests.api.world import make_execution
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_user, make_workflow

# Endpoints anyone may call: the login page, health, public forms, e-mail
# tracking and provider callbacks, site tracking, static files, API docs,
# metrics (behind METRICS_TOKEN when set, docs/OPERATIONS.md).
PUBLIC = frozenset(
    {
        "healthz",
        "operations.metrics",
        "static",
        "auth.login",
        "public_forms.show",
        "public_forms.submit",
        "public_forms.confirm_page",
        "public_forms.confirm",
        "public_tracking.click",
        "public_tracking.decoy",
        "public_tracking.open_pixel",
        "public_tracking.unsubscribe_page",
        "public_tracking.unsubscribe",
        "public_tracking.email_events",
        "public_site.track_js",
        "public_site.beacon",
        "public_site.beacon_preflight",
        "api_docs.docs_page",
        "api_docs.openapi_json",
    }
)

# Public writes that carry their own proof instead of the session's CSRF
# token: a signed form token, the unsubscribe token (RFC 8058 one-click
# POSTs come from mail clients), the provider's signature, the site beacon,
# the signed double opt-in link.
CSRF_EXEMPT = frozenset(
    {
        "public_forms.submit",
        "public_forms.confirm",
        "public_tracking.unsubscribe",
        "public_tracking.email_events",
        "public_site.beacon",
    }
)

# The root page only redirects (to the workflow list or to the login page).
REDIRECT_ONLY = frozenset({"index"})

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_VAR = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    endpoint: str

    @property
    def is_api(self) -> bool:
        return self.rule.startswith("/api/v1/")

    @property
    def params(self) -> list[tuple[str, str]]:
        """[(converter, name)] in URL order; converter "default" for strings."""
        return [(conv or "default", name) for conv, name in _VAR.findall(self.rule)]

    @property
    def int_params(self) -> list[str]:
        return [name for conv, name in self.params if conv == "int"]

    def url(self, ids: dict) -> str:
        def value(match: re.Match) -> str:
            name = match.group(2)
            if name not in ids:
                raise UnmappedParameter(f"{self}: no object for <{name}>; add it to make_world")
            return str(ids[name])

        return _VAR.sub(value, self.rule)

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


class UnmappedParameter(LookupError):
    """A route names a parameter the sweeps do not know how to fill."""


def routes(app) -> list[Route]:
    """Every (rule, method) the app answers, HEAD/OPTIONS aside (OPTIONS is
    answered by Flask itself; the CORS preflight of the beacon is an
    explicit OPTIONS route and is kept)."""
    found = []
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"}) or ["OPTIONS"]
        found.extend(Route(rule.rule, method, rule.endpoint) for method in methods)
    return sorted(found, key=lambda r: (r.rule, r.method))


def protected(app) -> list[Route]:
    return [r for r in routes(app) if r.endpoint not in PUBLIC]


def make_world(firm, *, admin=None) -> dict:
    """One firm-owned object for every URL parameter of the app, keyed by
    the parameter's name (``workflow_id`` -> a Workflow, ...)."""
    from app.automation.lifecycle.gallery import TEMPLATES
    from app.automation.lifecycle.publishing import publish

    workflow = make_workflow(
        firm,
        name=f"{firm.name} welcome",
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "manual"}],
    )
    contact = make_contact(firm)
    other = make_user(firm, f"someone{secrets.token_hex(3)}@{firm.name.lower()}.test")
    with firm_context(firm.id):
        version, _ = publish(workflow, admin)
        tag = Tag(name="vip")
        contact_list = ContactList(name="Newsletter")
        contact.tags.append(tag)
        contact.lists.append(contact_list)
        goal = WorkflowGoal(workflow_id=workflow.id, name="Signed up", goal_value=10)
        analytics = WorkflowAnalytics(
            workflow_id=workflow.id, period_start=_day(1), period_end=_day(31)
        )
        form = Form(name="Signup", fields=[{"name": "email", "type": "email", "required": True}])
        deal = Deal(contact_id=contact.id, title="Big deal", value=100)
        task = Task(contact_id=contact.id, title="Call back")
        comment = WorkflowComment(workflow_id=workflow.id, body="Looks good")
        approval = ApprovalRequest(workflow_id=workflow.id, definition={}, status="pending")
        contact_import = ContactImport(filename="people.csv", header=["email"], mapping=["email"])
        suppression_import = ContactImport(
            kind="suppressions", filename="gone.csv", header=["email"], status="done"
        )
        token, _ = ApiToken.issue(other, name="cron")
        suppression = Suppression(address=f"gone@{firm.name.lower()}.test", reason="manual")
        topic = Topic(name="Newsletter")
        domain = SendingDomain(domain=f"{firm.name.lower()}-{secrets.token_hex(3)}.example")
        forecast = WorkflowForecast(workflow_id=workflow.id, days=30, status="queued")
        db.session.add(forecast)
        audience = Audience(name="VIPs", rules=[{"tag": "vip", "op": "has"}])
        db.session.add(audience)
        db.session.flush()
        enrollment = AudienceEnrollment(
            audience_id=audience.id, workflow_id=workflow.id, status="done"
        )
        db.session.add(enrollment)
        hook = HookSubscription(target_url="https://hooks.example/in", event="goal.reached")
        db.session.add(hook)
        db.session.add_all([goal, analytics, form, deal, task, comment, approval, contact_import])
        db.session.add_all([suppression, topic, domain, suppression_import])
        db.session.commit()
    execution = make_execution(workflow, contact)
    with firm_context(firm.id):
        message = OutboxMessage(
            execution_id=execution.id,
            workflow_id=workflow.id,
            contact_id=contact.id,
            node_id="send_welcome_email",
            channel="email",
            status="sent",
            to_address=contact.email,
            subject="Welcome!",
            body_html='<h1>Welcome!</h1><p>Hi, <a href="https://example.com/start">start here</a>.</p>',
            message_id=f"<{secrets.token_hex(8)}@test>",
        )
        db.session.add(message)
        db.session.commit()
        first_node = min(workflow.nodes, key=lambda n: n.id)
        return {
            "workflow_id": workflow.id,
            "trigger_id": workflow.triggers[0].id,
            "node_pk": first_node.id,
            "node_id": first_node.node_id,
            "edge_id": workflow.edges[0].id,
            "number": version.number,
            "comment_id": comment.id,
            "approval_id": approval.id,
            "import_id": contact_import.id,
            "suppression_import_id": suppression_import.id,
            "goal_id": goal.id,
            "analytics_id": analytics.id,
            "contact_id": contact.id,
            "tag": "vip",
            "tag_id": tag.id,
            "list_id": contact_list.id,
            "form_id": form.id,
            "deal_id": deal.id,
            "task_id": task.id,
            "execution_id": execution.id,
            "message_id": message.id,
            "token_id": token.id,
            "user_id": other.id,
            "suppression_id": suppression.id,
            "topic_id": topic.id,
            "domain_id": domain.id,
            "forecast_id": forecast.id,
            "audience_id": audience.id,
            "enrollment_id": enrollment.id,
            "subscription_id": hook.id,
            # Not firm-owned: a REST hook event name.
            "event": "goal.reached",
            # Not firm-owned: the first template of the shared library.
            "key": next(iter(TEMPLATES)),
        }


def _day(n: int):
    from datetime import date

    return date(2026, 1, n)


# Columns that change by merely being used, whoever asks: a token's "last
# used" stamp and a user's last login.
VOLATILE = {"api_tokens": {"last_used_at"}, "users": {"last_login_at"}}


def snapshot() -> dict:
    """Every row of every table (volatile columns aside), for "nothing
    changed" comparisons. Read across firms, on its own connection."""
    tables = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            skip = VOLATILE.get(table.name, set())
            columns = [c for c in table.columns if c.name not in skip]
            order = list(table.primary_key.columns) or columns
            rows = conn.execute(select(*columns).order_by(*order)).all()
            tables[table.name] = [tuple(row) for row in rows]
    return tables


def firm_rows(snap: dict, firm_id: int) -> dict:
    """Only one firm's rows of a :func:`snapshot`: rows with that firm_id,
    and association rows of that firm's contacts."""
    owned = {}
    contacts = set()
    for table in db.metadata.sorted_tables:
        names = [c.name for c in table.columns if c.name not in VOLATILE.get(table.name, set())]
        if "firm_id" in names:
            at = names.index("firm_id")
            owned[table.name] = [row for row in snap[table.name] if row[at] == firm_id]
            if table.name == "contacts":
                contacts = {row[names.index("id")] for row in owned[table.name]}
    for table in db.metadata.sorted_tables:
        names = [c.name for c in table.columns]
        if table.name not in owned and "contact_id" in names:
            at = names.index("contact_id")
            owned[table.name] = [row for row in snap[table.name] if row[at] in contacts]
    return owned


def cross_firm_references() -> list[str]:
    """Rows that point at a row of another firm, through any foreign key
    between firm-owned tables (or both sides of an association table).
    The tenancy rules promise there are none."""
    from sqlalchemy import and_, func

    found = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            links = [
                fk
                for fk in table.foreign_keys
                if "firm_id" in fk.column.table.c and fk.column.table.name != "firms"
            ]
            if "firm_id" in table.c:
                for fk in links:
                    other = fk.column.table.alias()
                    on = other.c[fk.column.name] == fk.parent
                    stmt = (
                        select(func.count())
                        .select_from(table.join(other, on))
                        .where(table.c.firm_id != other.c.firm_id)
                    )
                    if conn.scalar(stmt):
                        found.append(f"{table.name}.{fk.parent.name}")
            elif len(links) == 2:
                left, right = (fk.column.table.alias() for fk in links)
                joined = table.join(left, left.c[links[0].column.name] == links[0].parent).join(
                    right, right.c[links[1].column.name] == links[1].parent
                )
                stmt = select(func.count()).select_from(joined)
                if conn.scalar(stmt.where(and_(left.c.firm_id != right.c.firm_id))):
                    found.append(table.name)
    return found


def changed_tables(before: dict, after: dict) -> dict:
    """{table: (rows before, rows after)} for the tables that differ."""
    return {
        name: (len(before[name]), len(after.get(name, [])))
        for name in before
        if before[name] != after.get(name)
    }


def csrf_header(app, client) -> dict:
    """Put a CSRF token in the client's session and return the header that
    carries it (what the pages' HTMX requests send)."""
    raw = secrets.token_hex(20)
    with client.session_transaction() as session:
        session["csrf_token"] = raw
    signed = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)
    return {"X-CSRFToken": signed}


__all__ = [
    "CSRF_EXEMPT",
    "PUBLIC",
    "REDIRECT_ONLY",
    "Route",
    "UnmappedParameter",
    "changed_tables",
    "csrf_header",
    "make_world",
    "protected",
    "routes",
    "snapshot",
]

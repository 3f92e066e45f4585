"""Another firm's objects, asked for by id: every route of ``url_map`` with an
``<int:...>`` parameter, every method, called by Globex's admin (charlie)
with Acme's ids, through the API (bearer token) and the pages (session,
with a valid CSRF token so the request reaches the view). Each answer is
404 and no table changes.

Routes with two ids are also called with charlie's own parent and Acme's
child (``/automation/builder/<his workflow>/triggers/<Acme's trigger>``):
a check of the parent alone would let those through.
"""

from __future__ import annotations

from tests.security.routes import (
    PUBLIC,
    WRITE_METHODS,
    changed_tables,
    cross_firm_references,
    csrf_header,
    firm_rows,
    make_world,
    routes,
    snapshot,
)

# Not ids: a version number is per workflow, a template key is shared.
NOT_OWNED = {"number", "key"}
FORM = {"name": "x", "label": "x", "body": "x", "email": "x@example.com", "tag": "x"}


def _api_body(route, theirs: dict, mine: dict) -> dict | None:
    """A body that passes validation, so the request reaches the lookup;
    the objects it names are the caller's own."""
    from app.api import load_endpoints

    for ep in load_endpoints():
        if "/api/v1" + ep.rule == route.rule and ep.method == route.method:
            if ep.body is None:
                return None
            return {
                "WorkflowUpdate": {"name": "Renamed"},
                "TriggerUpdate": {"is_active": False},
                "NodeUpdate": {"label": "Renamed"},
                "GoalUpdate": {"name": "Renamed"},
                "ContactUpdate": {"first_name": "Renamed"},
                "TagIn": {"tag": "new"},
                "ListRef": {"list": mine["list_id"]},
                "ListUpdate": {"description": "d"},
                "FormUpdate": {"name": "Renamed"},
                "DealUpdate": {"stage": "proposal"},
                "TaskUpdate": {"title": "Renamed"},
                "TriggerRun": {"contact_id": mine["contact_id"]},
                "CommentIn": {"body": "mine now"},
                "RollbackIn": {"version": theirs["number"]},
                "RejectIn": {"note": "no"},
            }.get(ep.body.__name__, {})
    raise AssertionError(f"{route}: not an API endpoint")


def _variants(route, theirs: dict, mine: dict) -> list[tuple[str, dict]]:
    """(label, ids): all of Acme's ids; and, for nested routes, charlie's
    own first id with Acme's for the rest."""
    variants = [("theirs", theirs)]
    ids = [name for name in route.int_params if name not in NOT_OWNED]
    if len(ids) >= 2:
        first = ids[0]
        variants.append(("mixed", {**theirs, first: mine[first], "number": mine["number"]}))
    return variants


def _sweep(client, app, theirs, mine, *, api: bool, headers: dict) -> tuple[int, dict, set]:
    calls, wrong, objects = 0, {}, set()
    for route in routes(app):
        if route.is_api != api or route.endpoint in PUBLIC or not route.int_params:
            continue
        for label, ids in _variants(route, theirs, mine):
            kwargs = {"method": route.method, "headers": headers}
            if route.method in WRITE_METHODS:
                if api:
                    kwargs["json"] = _api_body(route, theirs, mine)
                else:
                    kwargs["data"] = FORM
            # Required query parameters, so the request reaches the lookup.
            query = "?base=1" if route.rule.endswith("/versions/diff/") else ""
            response = client.open(route.url(ids) + query, **kwargs)
            calls += 1
            objects |= {(n, ids[n]) for n in route.int_params if ids[n] == theirs.get(n)}
            body = response.get_json(silent=True) or {}
            ok = response.status_code == 404
            if api:
                ok = ok and body.get("error", {}).get("code") == "not_found"
            if not ok:
                wrong[f"{route} [{label}]"] = response.status_code
    return calls, wrong, objects


def test_another_firms_objects_are_not_found_through_the_api(
    app, client, acme, globex, alice, charlie, token_for
):
    theirs = make_world(acme, admin=alice)
    mine = make_world(globex, admin=charlie)
    headers = token_for(charlie)
    before = snapshot()
    calls, wrong, objects = _sweep(client, app, theirs, mine, api=True, headers=headers)
    assert wrong == {}
    assert changed_tables(before, snapshot()) == {}
    print(f"\nAPI cross-firm: {calls} requests, {len(objects)} of Acme's objects")
    assert calls >= 60


def test_another_firms_objects_are_not_found_through_the_pages(
    app, client, auth, acme, globex, alice, charlie
):
    theirs = make_world(acme, admin=alice)
    mine = make_world(globex, admin=charlie)
    assert auth.login(charlie).status_code == 302
    headers = csrf_header(app, client) | {"HX-Request": "true"}
    before = snapshot()
    calls, wrong, objects = _sweep(client, app, theirs, mine, api=False, headers=headers)
    assert wrong == {}
    assert changed_tables(before, snapshot()) == {}
    print(f"\npages cross-firm: {calls} requests, {len(objects)} of Acme's objects")
    assert calls >= 60


def test_every_id_in_url_map_names_a_kind_of_object_the_sweep_builds(app, acme, alice):
    """A new route with a new parameter fails here until make_world builds
    an object for it (and so until the sweeps above attack it)."""
    world = make_world(acme, admin=alice)
    names = {name for route in routes(app) for _, name in route.params}
    public = {name for route in routes(app) if route.endpoint in PUBLIC for _, name in route.params}
    assert names - public - set(world) == set()


# Fields that name another object (API bodies), and the kind they name.
API_REFERENCES = {
    "workflow": "workflow_id",
    "contact": "contact_id",
    "contact_id": "contact_id",
    "source_node": "node_pk",
    "target_node": "node_pk",
    "goal_node": "node_pk",
    "list": "list_id",
    "assignee": "user_id",
}
# The rest of a valid body, per request model, so the references are read.
API_BASES = {
    "NodeCreate": {"node_id": "mine", "node_type": "goal"},
    "TriggerCreate": {"trigger_type": "manual"},
    "GoalCreate": {"name": "mine"},
    "DealCreate": {"title": "mine"},
    "TaskCreate": {"title": "mine"},
    "EventIn": {"type": "api"},
    "TagIn": {"tag": "mine"},
    "CommentIn": {"body": "mine"},
    "ContactCreate": {"email": "mine@globex.test"},
    "WorkflowCreate": {"name": "mine"},
    "ListCreate": {"name": "mine"},
    "FormCreate": {"name": "mine"},
}
PAGE_SPRAY = ("workflow_id", "contact_id", "list_id", "tag_id", "user_id")
DESTRUCTIVE = ("delete", "remove", "revoke", "toggle", "cancel", "archive")


def _spray(route, theirs: dict) -> dict:
    """The body for ``route``: valid apart from naming Acme's objects in
    every field that names one."""
    if not route.is_api:
        return {name: theirs[name] for name in PAGE_SPRAY} | {
            "ids": [theirs["contact_id"], theirs["execution_id"]],
            "preview_contact": theirs["contact_id"],
            "name": "mine",
            "label": "mine",
            "body": "mine",
            "tag": "mine",
            "email": "mine@globex.test",
            "node_type": "goal",
            "trigger_type": "manual",
        }
    from app.api import load_endpoints

    for ep in load_endpoints():
        if "/api/v1" + ep.rule == route.rule and ep.method == route.method and ep.body:
            fields = ep.body.model_fields
            refs = {f: theirs[kind] for f, kind in API_REFERENCES.items() if f in fields}
            return API_BASES.get(ep.body.__name__, {}) | refs
    return {}


def _last_if_destructive(route) -> tuple:
    return (route.method == "DELETE" or any(w in route.rule for w in DESTRUCTIVE), str(route))


def test_acmes_ids_in_request_bodies_reach_nothing_of_acmes(
    app, client, auth, acme, globex, alice, charlie, token_for
):
    """Globex's own objects in the URL, Acme's ids in every body field that
    names an object, on every write route (API and pages): whatever the
    answer, Acme's rows are unchanged, no row links the two firms, and no
    answer shows Acme's contact."""
    theirs = make_world(acme, admin=alice)
    mine = make_world(globex, admin=charlie)
    from app.models import Contact
    from app.tenancy import firm_context

    with firm_context(acme.id):
        secret = _contact_email(Contact, theirs["contact_id"])
    token = token_for(charlie)
    assert auth.login(charlie).status_code == 302
    csrf = csrf_header(app, client) | {"HX-Request": "true"}
    before = snapshot()
    sent, leaks = 0, {}
    # Globex's own objects must survive until every route has been tried.
    for route in sorted(routes(app), key=_last_if_destructive):
        if route.method not in WRITE_METHODS or route.endpoint in PUBLIC:
            continue
        if route.endpoint == "auth.logout":
            continue
        kwargs = {"method": route.method}
        if route.is_api:
            kwargs |= {"headers": token, "json": _spray(route, theirs)}
        else:
            kwargs |= {"headers": csrf, "data": _spray(route, theirs)}
        response = client.open(route.url(mine), **kwargs)
        sent += 1
        assert response.status_code < 500, (str(route), response.status_code)
        if secret in response.get_data(as_text=True):
            leaks[str(route)] = response.status_code
    assert leaks == {}
    assert changed_tables(firm_rows(before, acme.id), firm_rows(snapshot(), acme.id)) == {}
    assert cross_firm_references() == []
    print(f"\nAcme's ids in bodies: {sent} write routes as Globex, no leak, no cross-firm row")
    assert sent >= 90


def _contact_email(model, contact_id: int) -> str:
    from app.extensions import db

    return db.session.get(model, contact_id).email


def test_the_cross_firm_reference_check_sees_a_planted_one(acme, globex, alice, charlie):
    """The check above is only as good as this: a list member linking
    Globex's contact to Acme's list is found."""
    from app.extensions import db
    from app.models.crm import list_members

    theirs = make_world(acme, admin=alice)
    mine = make_world(globex, admin=charlie)
    assert cross_firm_references() == []
    db.session.execute(
        list_members.insert().values(list_id=theirs["list_id"], contact_id=mine["contact_id"])
    )
    db.session.commit()
    assert cross_firm_references() == ["list_members"]


def test_no_page_or_list_globex_reads_shows_anything_of_acmes(
    app, client, auth, acme, globex, alice, charlie, token_for
):
    """Every GET route (pages, fragments and API lists), with Globex's own
    ids where it takes any: Acme's workflow name, contact e-mail and
    user e-mail appear in none of the answers."""
    from app.extensions import db
    from app.models import Contact, User, Workflow

    theirs = make_world(acme, admin=alice)
    mine = make_world(globex, admin=charlie)
    from app.tenancy import firm_context

    with firm_context(acme.id):
        markers = {
            db.session.get(Workflow, theirs["workflow_id"]).name,
            db.session.get(User, theirs["user_id"]).email,
            db.session.get(Contact, theirs["contact_id"]).email,
            alice.email,
        }
    token = token_for(charlie)
    assert auth.login(charlie).status_code == 302
    read, leaks = 0, {}
    for route in routes(app):
        if route.method != "GET" or route.endpoint in PUBLIC:
            continue
        # Pages answer HTMX with a fragment of their own: read both.
        for extra in ({},) if route.is_api else ({}, {"HX-Request": "true"}):
            headers = (token if route.is_api else {}) | extra
            try:
                response = client.get(route.url(mine), headers=headers)
            except Exception as exc:  # TESTING re-raises: record it as the 500 it is
                leaks[f"{route} {extra}"] = (500, repr(exc)[:120])
                continue
            read += 1
            text = response.get_data(as_text=True)
            found = sorted(marker for marker in markers if marker in text)
            if found or response.status_code >= 500:
                leaks[f"{route} {extra}"] = (response.status_code, found)
    assert leaks == {}
    print(f"\nGlobex's reads: {read} GET requests, none shows Acme's data")
    assert read >= 100

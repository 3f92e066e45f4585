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
    csrf_header,
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

"""Every route of ``app.url_map``, every method it accepts, called without
credentials: the API answers 401, a page redirects to the login page,
nothing is written. Only the routes in ``routes.PUBLIC`` answer anyone.

URLs name real objects of a firm, so a route that forgot its check would
answer 2xx and fail here; a new route is swept without editing this file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.security.routes import (
    PUBLIC,
    REDIRECT_ONLY,
    WRITE_METHODS,
    changed_tables,
    csrf_header,
    make_world,
    protected,
    routes,
    snapshot,
)

FORM = {"name": "x", "email": "x@example.com", "body": "x", "label": "x"}


def _call(client, route, ids, headers=None):
    kwargs = {"method": route.method, "headers": headers or {}}
    if route.method in WRITE_METHODS:
        kwargs["json" if route.is_api else "data"] = {} if route.is_api else FORM
    return client.open(route.url(ids), **kwargs)


def _anonymous_sweep(app, client, ids: dict) -> tuple[int, dict]:
    # A real CSRF token in the anonymous session: the writes reach the
    # authentication check instead of stopping at the CSRF one.
    headers = csrf_header(app, client)
    swept, wrong = 0, {}
    for route in protected(app):
        response = _call(client, route, ids, headers)
        swept += 1
        location = urlsplit(response.headers.get("Location", "")).path
        if route.is_api:
            body = response.get_json(silent=True) or {}
            ok = response.status_code == 401 and body["error"]["code"] == "unauthorized"
        elif route.endpoint in REDIRECT_ONLY:
            ok = response.status_code == 302 and location.startswith("/")
        else:
            ok = response.status_code == 302 and location == "/login"
        if not ok:
            wrong[str(route)] = (response.status_code, location)
    return swept, wrong


def test_every_route_but_the_public_ones_needs_a_signed_in_user(app, client, acme, alice):
    ids = make_world(acme, admin=alice)
    before = snapshot()
    swept, wrong = _anonymous_sweep(app, client, ids)
    assert wrong == {}
    assert changed_tables(before, snapshot()) == {}
    print(f"\nroutes swept without credentials: {swept} (of {len(routes(app))} in url_map)")
    assert swept >= 170


def test_a_new_route_that_forgets_its_check_fails_the_sweep(app, acme, alice):
    """What the sweep is for: nobody edits it when a route is added."""
    from app import create_app

    fresh = create_app({**app.config, "SERVER_NAME": None})

    @fresh.route("/automation/<int:workflow_id>/oops", methods=["GET", "POST"])
    def oops(workflow_id: int):
        return "open to anyone"

    ids = make_world(acme, admin=alice)
    _, wrong = _anonymous_sweep(fresh, fresh.test_client(), ids)
    assert set(wrong) == {
        "GET /automation/<int:workflow_id>/oops",
        "POST /automation/<int:workflow_id>/oops",
    }


def test_the_public_allowlist_names_only_routes_that_exist(app):
    endpoints = {route.endpoint for route in routes(app)}
    assert PUBLIC - endpoints == set()


def test_public_routes_answer_strangers_without_a_server_error(app, client, acme, alice):
    ids = make_world(acme, admin=alice)
    ids |= {"form_key": "nope", "token": "garbage", "key": "nope", "filename": "nope.css"}
    wrong = {}
    public = [route for route in routes(app) if route.endpoint in PUBLIC]
    for route in public:
        response = _call(client, route, ids)
        if response.status_code >= 500:
            wrong[str(route)] = response.status_code
    assert wrong == {}
    assert len(public) >= 14


def test_a_user_demoted_to_portal_is_refused_every_page_and_endpoint(
    app, client, auth, acme, alice, bob
):
    """Portal accounts cannot sign in; a marketer signed in when an admin
    turns the account into a portal one keeps the session cookie, and must
    be refused from the next request on (403, nothing written)."""
    from app.extensions import db

    ids = make_world(acme, admin=alice)
    assert auth.login(bob).status_code == 302
    bob.role = "portal"
    db.session.commit()
    headers = csrf_header(app, client)
    before = snapshot()
    swept, wrong = 0, {}
    for route in protected(app):
        if route.endpoint in REDIRECT_ONLY or route.endpoint == "auth.logout":
            continue
        response = _call(client, route, ids, headers)
        swept += 1
        if response.status_code != 403:
            wrong[str(route)] = response.status_code
    assert wrong == {}
    assert changed_tables(before, snapshot()) == {}
    print(f"\nroutes swept as a portal user: {swept}")

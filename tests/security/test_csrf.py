"""Every state-changing browser request without a valid CSRF token: 400 and
no table changed. Generated from ``url_map``: every POST/PUT/PATCH/DELETE
route a signed-in session can reach (pages, HTMX fragments, and the API
when called with the session cookie instead of a token), as an admin of
the firm that owns the objects in the URL, so a missing check would write.

Only the public writes of ``routes.CSRF_EXEMPT`` carry their own proof.
"""

from __future__ import annotations

import pytest

from tests.security.routes import (
    CSRF_EXEMPT,
    WRITE_METHODS,
    changed_tables,
    make_world,
    routes,
    snapshot,
)

FORM = {"name": "x", "label": "x", "body": "x", "email": "x@example.com", "tag": "x"}
HX = {"HX-Request": "true"}

# What a forger could send instead of the token.
FORGERIES = {
    "missing": {},
    "garbage": {"X-CSRFToken": "not-a-token"},
    "another session's": None,  # filled in by the test: a real token, other session
}


def _writes(app):
    return [r for r in routes(app) if r.method in WRITE_METHODS and r.endpoint not in CSRF_EXEMPT]


def _other_sessions_token(app) -> str:
    """A genuine token, signed with the app's key, for another session's raw
    value (what the attacker's own session would hand them). Minted by hand:
    the shared test app context caches the page token in ``g``."""
    import secrets

    from itsdangerous import URLSafeTimedSerializer

    serializer = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token")
    return serializer.dumps(secrets.token_hex(20))


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_every_browser_write_without_a_valid_csrf_token_is_refused(
    app, client, auth, acme, alice, forgery
):
    ids = make_world(acme, admin=alice)
    assert auth.login(alice).status_code == 302
    headers = FORGERIES[forgery]
    if headers is None:
        headers = {"X-CSRFToken": _other_sessions_token(app)}
    before = snapshot()
    sent, wrong = 0, {}
    for route in _writes(app):
        # HTMX requests pass the same check: sent once, with the token missing.
        for extra in ({}, HX) if forgery == "missing" else ({},):
            kwargs = {"method": route.method, "headers": headers | extra}
            if route.is_api:
                kwargs["json"] = {"name": "x"}
            else:
                form = dict(FORM)
                if forgery == "another session's":
                    form["csrf_token"] = headers["X-CSRFToken"]
                kwargs["data"] = form
            response = client.open(route.url(ids), **kwargs)
            sent += 1
            text = response.get_data(as_text=True)
            if response.status_code != 400 or "CSRF" not in text:
                wrong[f"{route} {extra}"] = response.status_code
    assert wrong == {}
    assert changed_tables(before, snapshot()) == {}
    # The session survived every refused request (logout was refused too).
    assert client.get("/automation").status_code == 200
    print(f"\nCSRF ({forgery}): {len(_writes(app))} routes, {sent} requests")
    assert len(_writes(app)) >= 90


def test_signing_in_needs_the_token_too(client, alice):
    """Login CSRF: a forged sign-in would put the victim in the attacker's
    account."""
    from tests.factories import PASSWORD

    response = client.post("/login", data={"email": alice.email, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/automation").status_code == 302


def test_the_sweep_covers_every_write_a_page_offers(app):
    exempt = {r.endpoint for r in routes(app) if r.endpoint in CSRF_EXEMPT}
    assert exempt == CSRF_EXEMPT
    assert "auth.logout" in {r.endpoint for r in _writes(app)}

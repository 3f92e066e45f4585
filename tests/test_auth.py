"""Signing in and out, and who may see the app."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken
from app.models.accounts import hash_token


def test_the_login_page_renders(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b'name="csrf_token"' in response.data


def test_it_signs_in_and_shows_the_workflow_list(client, auth, alice):
    response = auth.login(alice)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/automation")
    page = client.get("/automation")
    assert page.status_code == 200
    assert b"No workflows yet" in page.data


def test_it_rejects_a_wrong_password(client, auth, alice):
    response = auth.login(alice, password="nope")
    assert response.status_code == 400
    assert b"do not match" in response.data
    assert client.get("/automation").status_code == 302


def test_login_requires_a_csrf_token(client, alice):
    response = client.post("/login", data={"email": alice.email, "password": "x"})
    assert response.status_code == 400


def test_it_signs_out(client, auth, alice):
    auth.login(alice)
    assert auth.logout().status_code == 302
    assert client.get("/automation").status_code == 302


def test_logout_requires_post_with_csrf(client, auth, alice):
    auth.login(alice)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/automation").status_code == 200


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/automation")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_portal_users_cannot_sign_in(client, auth, paula):
    response = auth.login(paula)
    assert response.status_code == 400
    assert b"Portal accounts" in response.data


def test_login_never_redirects_off_site(client, auth, alice):
    token = auth.csrf_token()
    response = client.post(
        "/login?next=https://evil.example/",
        data={
            "email": alice.email,
            "password": "correct horse battery staple",
            "csrf_token": token,
        },
    )
    assert response.headers["Location"] == "/automation"


def test_a_bearer_token_identifies_the_user(client, alice, token_for):
    response = client.get("/automation", headers=token_for(alice))
    assert response.status_code == 200


def test_tokens_are_stored_hashed(alice, token_for):
    header = token_for(alice)
    raw = header["Authorization"].split()[1]
    stored = db.session.scalars(select(ApiToken).execution_options(all_firms=True)).one()
    assert stored.token_hash == hash_token(raw)
    assert raw not in (stored.token_hash, stored.prefix)


def test_passwords_are_hashed(alice):
    assert alice.password_hash.startswith("$argon2")
    assert alice.check_password("correct horse battery staple")
    assert not alice.check_password("wrong")


def test_pages_carry_a_strict_content_security_policy(client):
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_an_absurd_id_in_a_page_url_is_a_404(client, auth, alice):
    auth.login(alice)
    assert client.get(f"/automation/builder/{2**70}").status_code == 404


def _token_queries(client, headers, calls: int) -> int:
    from sqlalchemy import event

    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        if "FROM api_tokens" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(calls):
            assert client.get("/api/v1/contacts/", headers=headers).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen)


def test_a_token_is_looked_up_once_for_many_calls_within_the_cache_time(client, alice, token_for):
    headers = token_for(alice)
    # The first call reads the token (and stamps its last use); the next
    # ones within AUTH_CACHE_SECONDS ask the database nothing about it.
    assert _token_queries(client, headers, 1) >= 1
    assert _token_queries(client, headers, 5) == 0


def test_a_revoked_token_is_refused_at_once_by_the_revoking_process(client, auth, alice, token_for):
    import re

    headers = token_for(alice)
    assert client.get("/api/v1/contacts/", headers=headers).status_code == 200
    [row] = db.session.scalars(select(ApiToken).execution_options(all_firms=True))
    auth.login(alice)
    page = client.get("/admin").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    revoked = client.post(f"/admin/tokens/{row.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 302
    auth.logout()
    assert client.get("/api/v1/contacts/", headers=headers).status_code == 401


def test_a_token_cache_entry_expires(app, client, alice, token_for):
    headers = token_for(alice)
    app.config["AUTH_CACHE_SECONDS"] = 0
    try:
        assert _token_queries(client, headers, 2) == 2
    finally:
        app.config["AUTH_CACHE_SECONDS"] = 5

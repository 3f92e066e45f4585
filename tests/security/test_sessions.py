"""Signing out revokes: a copied session cookie or remember cookie stops
working after logout, a password change, deactivation or "sign out
everywhere"; every login gets its own remember token; every cookie has
SameSite, and Secure when served over https."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from flask import g
from sqlalchemy import select

from app.clock import now
from app.extensions import db
from app.models import UserSession
from tests.conftest import AuthActions
from tests.factories import PASSWORD

COOKIES = ("session", "remember_token")


@pytest.fixture(autouse=True)
def _each_request_starts_unknown(app):
    """The suite keeps one app context open across a test's requests, so
    ``g`` would carry Flask-Login's user and Flask-WTF's token from one
    client's request into another's; a real server starts each request with
    an empty ``g``. Several browsers in one test need that."""

    def forget():
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    app.before_request_funcs.setdefault(None, []).insert(0, forget)
    yield
    app.before_request_funcs[None].remove(forget)


def _session_rows() -> list[UserSession]:
    return list(db.session.scalars(select(UserSession).execution_options(all_firms=True)))


def _login(client, user, remember: bool = True, **kwargs):
    auth = AuthActions(client)
    data = {"email": user.email, "password": PASSWORD, "csrf_token": auth.csrf_token()}
    if remember:
        data["remember"] = "1"
    response = client.post("/login", data=data, **kwargs)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def _stolen(client) -> dict[str, str]:
    """The cookies an attacker copied out of a signed-in browser."""
    return {name: client.get_cookie(name).value for name in COOKIES if client.get_cookie(name)}


def _opens_the_app(app, cookies: dict[str, str]) -> bool:
    thief = app.test_client()
    for name, value in cookies.items():
        thief.set_cookie(name, value)
    return thief.get("/automation").status_code == 200


def _each_cookie_alone(cookies: dict[str, str]):
    return [{name: value} for name, value in cookies.items()]


def test_a_copied_session_or_remember_cookie_opens_the_app_until_logout(app, client, alice):
    _login(client, alice)
    stolen = _stolen(client)
    assert set(stolen) == set(COOKIES)
    for cookie in _each_cookie_alone(stolen):
        assert _opens_the_app(app, cookie), cookie
    AuthActions(client).logout()
    for cookie in _each_cookie_alone(stolen):
        assert not _opens_the_app(app, cookie), f"{cookie} still signs in after logout"
    assert _session_rows() == []


def test_every_login_gets_its_own_remember_token(app, alice):
    first, second = app.test_client(), app.test_client()
    _login(first, alice)
    _login(second, alice)
    assert first.get_cookie("remember_token").value != second.get_cookie("remember_token").value
    AuthActions(first).logout()
    assert second.get("/automation").status_code == 200  # the other browser stays in


def test_a_password_change_signs_out_every_other_browser(app, client, alice):
    laptop = app.test_client()
    _login(laptop, alice)
    stolen = _stolen(laptop)
    _login(client, alice)
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a new long passphrase",
            "confirm_password": "a new long passphrase",
            "csrf_token": AuthActions(client).csrf_token("/account"),
        },
    )
    assert response.status_code == 303
    assert client.get("/automation").status_code == 200  # the browser that changed it
    for cookie in _each_cookie_alone(stolen):
        assert not _opens_the_app(app, cookie)
    db.session.refresh(alice)
    assert alice.check_password("a new long passphrase")


def test_a_wrong_current_password_changes_nothing(client, alice):
    _login(client, alice)
    response = client.post(
        "/account/password",
        data={
            "current_password": "not it at all",
            "new_password": "a new long passphrase",
            "confirm_password": "a new long passphrase",
            "csrf_token": AuthActions(client).csrf_token("/account"),
        },
    )
    assert response.status_code == 400
    assert b"not your current password" in response.data
    db.session.refresh(alice)
    assert alice.check_password(PASSWORD)


def test_deactivation_signs_the_user_out_everywhere(app, client, alice, bob):
    bobs = app.test_client()
    _login(bobs, bob)
    stolen = _stolen(bobs)
    _login(client, alice)
    csrf = AuthActions(client).csrf_token("/admin")
    assert (
        client.post(f"/admin/users/{bob.id}/toggle", data={"csrf_token": csrf}).status_code == 302
    )
    assert bobs.get("/automation").status_code == 302
    # Reactivated, the old cookies still do not come back to life.
    client.post(f"/admin/users/{bob.id}/toggle", data={"csrf_token": csrf})
    for cookie in _each_cookie_alone(stolen):
        assert not _opens_the_app(app, cookie)


def test_sign_out_everywhere_revokes_every_session(app, client, alice):
    phone = app.test_client()
    _login(phone, alice)
    _login(client, alice)
    csrf = AuthActions(client).csrf_token("/account")
    response = client.post("/account/sign-out-everywhere", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert client.get("/automation").status_code == 302
    assert phone.get("/automation").status_code == 302


def test_sessions_expire_server_side(app, client, alice, time_machine):
    time_machine.move_to(now(), tick=False)
    _login(client, alice, remember=False)
    [row] = _session_rows()
    assert not row.remember
    time_machine.shift(timedelta(hours=app.config["SESSION_LIFETIME_HOURS"], seconds=1))
    assert client.get("/automation").status_code == 302


def test_the_remember_cookie_lasts_thirty_days_not_a_year(client, alice):
    response = _login(client, alice)
    remember = next(c for c in response.headers.getlist("Set-Cookie") if "remember_token" in c)
    expires = parsedate_to_datetime(remember.split("Expires=", 1)[1].split(";", 1)[0])
    assert abs(expires - (now() + timedelta(days=30))) < timedelta(minutes=5)


def test_every_cookie_is_samesite_and_secure_over_https(client, alice):
    page = client.get("/login", base_url="https://localhost")
    response = _login(
        client, alice, base_url="https://localhost", headers={"Referer": "https://localhost/login"}
    )
    cookies = page.headers.getlist("Set-Cookie") + response.headers.getlist("Set-Cookie")
    assert {c.split("=", 1)[0] for c in cookies} >= {"session", "remember_token"}
    for cookie in cookies:
        assert "SameSite=" in cookie and "; Secure" in cookie, cookie


def test_over_plain_http_cookies_still_carry_samesite(client, alice):
    response = _login(client, alice)
    for cookie in response.headers.getlist("Set-Cookie"):
        assert "SameSite=" in cookie, cookie
        assert "; Secure" not in cookie

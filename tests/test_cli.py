"""The `automation` command line."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, Firm, User


def _all(model):
    return db.session.scalars(select(model).execution_options(all_firms=True)).all()


def test_create_user_creates_the_firm_and_an_admin(runner):
    result = runner.invoke(
        args=[
            "create-user",
            "Dana@Example.com",
            "--firm",
            "Initech",
            "--password",
            "pw-of-12-chars",
        ]
    )
    assert result.exit_code == 0, result.output
    (user,) = _all(User)
    assert user.email == "dana@example.com"
    assert user.role == "admin"
    assert user.firm.name == "Initech"
    assert user.check_password("pw-of-12-chars")


def test_create_user_joins_an_existing_firm_with_a_role(runner, acme):
    result = runner.invoke(
        args=[
            "create-user",
            "eve@acme.test",
            "--firm",
            "Acme",
            "--password",
            "pw-of-12-chars",
            "--role",
            "portal",
        ]
    )
    assert result.exit_code == 0, result.output
    assert [f.name for f in db.session.scalars(select(Firm))] == ["Acme"]
    assert _all(User)[0].role == "portal"


def test_create_user_refuses_a_taken_email(runner, alice):
    result = runner.invoke(
        args=["create-user", alice.email, "--firm", "Acme", "--password", "pw-of-12-chars"]
    )
    assert result.exit_code != 0
    assert "already has an account" in result.output


def test_create_token_prints_only_the_token(runner, client, alice):
    result = runner.invoke(args=["create-token", alice.email])
    assert result.exit_code == 0
    raw = result.stdout.strip()
    assert raw.startswith("atk_") and "\n" not in raw
    assert len(_all(ApiToken)) == 1
    assert client.get("/automation", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


def test_create_token_for_an_unknown_user_fails(runner):
    result = runner.invoke(args=["create-token", "nobody@example.com"])
    assert result.exit_code != 0


def test_seed_demo_is_idempotent_and_prints_the_login(runner, client):
    first = runner.invoke(args=["seed-demo"])
    second = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "demo@example.com / demo-password" in first.output
    assert len(_all(User)) == 1
    token = (
        client.get("/login")
        .get_data(as_text=True)
        .split('name="csrf-token" content="')[1]
        .split('"')[0]
    )
    response = client.post(
        "/login",
        data={"email": "demo@example.com", "password": "demo-password", "csrf_token": token},
    )
    assert response.status_code == 302

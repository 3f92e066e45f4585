"""Account enumeration: an unknown address answers like a known one with a
wrong password (the same page, the same work: one real argon2 check), and
a firm's admin adding a user learns nothing about other firms' accounts."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

import app.models.accounts as accounts
from app.extensions import db
from app.models import User
from tests.conftest import AuthActions
from tests.factories import PASSWORD, make_user


class CountingHasher(PasswordHasher):
    """The real hasher, counting the checks it makes."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=64, parallelism=1)
        self.verifies = 0

    def verify(self, hash, password):  # noqa: A002
        self.verifies += 1
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch):
    counting = CountingHasher()
    monkeypatch.setattr(accounts, "_hasher", counting)
    return counting


def _attempt(client, email: str, password: str):
    token = AuthActions(client).csrf_token()
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def _answer(response) -> tuple[int, str]:
    page = response.get_data(as_text=True)
    page = re.sub(r'name="csrf-token" content="[^"]+"|value="[^"]*"', "", page)
    return response.status_code, page


def test_an_unknown_address_gets_the_same_answer_and_work_as_a_wrong_password(
    client, alice, hasher
):
    # The stored hash was made before the counter: re-hash so both use it.
    alice.set_password(PASSWORD)
    db.session.commit()
    hasher.verifies = 0
    known = _attempt(client, alice.email, "wrong password!")
    known_work = hasher.verifies
    hasher.verifies = 0
    unknown = _attempt(client, "nobody@acme.test", "wrong password!")
    assert known_work == hasher.verifies == 1
    assert _answer(known) == _answer(unknown)
    assert known.status_code == 400


def test_a_deactivated_account_costs_a_check_and_answers_like_any_miss(client, bob, hasher):
    bob.is_active_user = False
    db.session.commit()
    hasher.verifies = 0
    deactivated = _attempt(client, bob.email, PASSWORD)
    assert hasher.verifies == 1
    assert _answer(deactivated) == _answer(_attempt(client, "nobody@acme.test", PASSWORD))


def _add_user(client, email: str):
    token = AuthActions(client).csrf_token("/admin")
    return client.post(
        "/admin/users",
        data={
            "email": email,
            "name": "",
            "role": "marketer",
            "password": "another long password",
            "csrf_token": token,
        },
    )


def test_adding_a_user_answers_alike_for_a_free_address_and_another_firms(
    client, auth, alice, globex
):
    dana = make_user(globex, "dana@globex.com")
    auth.login(alice)
    answers = []
    for email in ("newcomer@initech.com", dana.email):
        response = _add_user(client, email)
        answers.append((response.status_code, _flashes(client).replace(email, "ADDRESS")))
    assert answers[0] == answers[1]
    assert answers[0][0] == 302
    rows = db.session.scalars(
        select(User).where(User.email == dana.email).execution_options(all_firms=True)
    ).all()
    assert sorted(row.firm_id for row in rows) == sorted([alice.firm_id, globex.id])


def _flashes(client) -> str:
    with client.session_transaction() as session:
        return str(session.pop("_flashes", ""))


def test_an_address_already_in_the_admins_own_firm_is_refused_by_name(client, auth, acme, alice):
    erin = make_user(acme, "erin@acme.com")
    auth.login(alice)
    response = _add_user(client, erin.email)
    assert response.status_code == 400
    assert b"already has an account in your firm" in response.data


def test_one_address_in_two_firms_signs_in_to_the_firm_whose_password_matches(client, acme, globex):
    make_user(acme, "sam@example.test", password="acme password 123")
    make_user(globex, "sam@example.test", password="globex password 123")
    assert _attempt(client, "sam@example.test", "globex password 123").status_code == 302
    page = client.get("/automation").get_data(as_text=True)
    assert "Globex" in page and "Acme" not in page


def test_the_same_password_in_two_firms_asks_which_firm(client, acme, globex):
    make_user(acme, "sam@example.test")
    make_user(globex, "sam@example.test")
    response = _attempt(client, "sam@example.test", PASSWORD)
    assert response.status_code == 400
    assert b'name="firm"' in response.data
    token = AuthActions(client).csrf_token()
    chosen = client.post(
        "/login",
        data={
            "email": "sam@example.test",
            "password": PASSWORD,
            "firm": str(acme.id),
            "csrf_token": token,
        },
    )
    assert chosen.status_code == 302
    assert "Acme" in client.get("/automation").get_data(as_text=True)

"""A deadlock victim runs again; other database errors are raised."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.automation.engine.deadlocks import retry_on_deadlock
from app.extensions import db
from app.models import Contact
from app.tenancy import firm_context
from tests.factories import make_contact


@pytest.mark.postgres
def test_the_victim_of_a_real_deadlock_runs_again_and_both_commit(app, acme):
    first, second = make_contact(acme).id, make_contact(acme).id
    barrier = threading.Barrier(2)
    runs, errors = [], []

    def add_one(order: tuple[int, int]) -> None:
        runs.append(order)
        for i, contact_id in enumerate(order):
            db.session.execute(
                text("UPDATE contacts SET score = score + 1 WHERE id = :id"), {"id": contact_id}
            )
            if i == 0 and len(runs) <= 2:
                barrier.wait(5)  # both hold their first row: a lock cycle
        db.session.commit()

    def worker(order):
        with app.app_context():
            try:
                retry_on_deadlock(add_one, order)
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=worker, args=(o,)) for o in ((first, second), (second, first))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(runs) == 3  # one of the two ran again
    db.session.expire_all()
    with firm_context(acme.id):
        assert [db.session.get(Contact, i).score for i in (first, second)] == [2, 2]


def test_other_database_errors_are_raised_at_once(acme):
    calls = []
    email = make_contact(acme).email

    def duplicate():
        calls.append(1)
        with firm_context(acme.id):
            db.session.add(Contact(firm_id=acme.id, email=email))
            db.session.flush()

    with pytest.raises(IntegrityError):
        retry_on_deadlock(duplicate)
    assert calls == [1]

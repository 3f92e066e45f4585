"""Two dispatchers racing over the same due rows send each message once."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.outbox import build_outbox_row
from app.extensions import db
from app.models import OutboxMessage
from app.tenancy import firm_context
from tests.delivery.conftest import make_execution
from tests.factories import make_contact, make_workflow

COUNT = 120


def _queue_many(firm, count):
    workflow = make_workflow(
        firm,
        nodes=[
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi {{ contact.first_name }}", "body_text": "Hi"},
            }
        ],
    )
    with firm_context(firm.id):
        node = workflow.nodes[0]
    for i in range(count):
        contact = make_contact(firm, email=f"racer{i}@example.com")
        execution = make_execution(firm, workflow, contact, current_node="mail")
        with firm_context(firm.id):
            row = build_outbox_row(
                firm_id=firm.id,
                execution=execution,
                node=node,
                visit=1,
                context=None,
                contact=contact,
            )
            db.session.add(OutboxMessage(**row))
            db.session.commit()


def test_racing_dispatchers_send_each_message_once(app, acme, smtp_server):
    _queue_many(acme, COUNT)
    start = threading.Barrier(2)
    handled: list[int] = []
    errors: list[BaseException] = []

    def dispatcher():
        with app.app_context():
            try:
                start.wait()
                total = 0
                while True:
                    count = deliver_due(limit=COUNT)
                    total += count
                    if not count:
                        break
                handled.append(total)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sum(handled) == COUNT
    ids = Counter(message["Message-ID"] for message in smtp_server.messages)
    assert len(ids) == COUNT
    assert max(ids.values()) == 1
    with firm_context(acme.id):
        sent = db.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent")
        )
    assert sent == COUNT

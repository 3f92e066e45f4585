""" "Why didn't this contact get that e-mail?": every reason a send step is
skipped, held or failed shows on the contact's page, in its timeline, in
words a marketer reads (docs/SENDING.md)."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import insert

from app.automation.delivery import gates
from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.gates.chain import CHAIN
from app.extensions import db
from app.models import Suppression, Topic, contact_subscriptions
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, run, states_by_node
from tests.factories import make_contact

EMAIL = {"subject": "Hello", "body_text": "Hi {{ contact.first_name }}", "max_attempts": 1}


def _page(client, auth, user, contact) -> str:
    """The contact page's words: tags out, white space collapsed."""
    auth.login(user)
    text = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()).replace(" :", ":")


def _mail(firm, user, **config):
    specs, edges = chain(("mail", "send_email", {**EMAIL, **config}))
    return active_workflow(firm, user, specs, edges)


def test_every_skip_reason_shows_on_the_contact_page(client, auth, acme, alice, smtp_server):
    with firm_context(acme.id):
        offers = Topic(name="Offers")
        db.session.add(offers)
        db.session.add(Suppression(channel="sms", address="+15550102000", reason="manual"))
        db.session.add(
            Suppression(
                address="gone@example.test",
                reason="hard_bounce",
                detail={"code": 550, "text": "5.1.1 User unknown"},
            )
        )
        db.session.commit()
        offers_id = offers.id
    cases = {
        "suppressed: hard bounce on ": make_contact(acme, email="gone@example.test"),
        "unsubscribed from all marketing": make_contact(
            acme, email="out@example.test", unsubscribed=True
        ),
        "unsubscribed from topic Offers": make_contact(acme, email="picky@example.test"),
        "contact has no e-mail address": make_contact(acme, email=""),
    }
    with firm_context(acme.id):
        db.session.execute(
            insert(contact_subscriptions).values(
                contact_id=cases["unsubscribed from topic Offers"].id,
                topic_id=offers_id,
                subscribed=False,
            )
        )
        db.session.commit()
    workflow = _mail(acme, alice, topic=offers_id)
    for words, contact in cases.items():
        execution = run(workflow, contact)
        assert states_by_node(acme.id, execution.id)["mail"].action_status == "skipped"
        page = _page(client, auth, alice, contact)
        assert f"Not sent: {words}" in page, words
    assert "550 5.1.1 User unknown" in _page(client, auth, alice, cases[next(iter(cases))])

    # SMS: a suppressed number, and a contact without one.
    specs, edges = chain(("text", "send_sms", {"body": "Hi"}))
    texts = active_workflow(acme, alice, specs, edges, name="Texts")
    number = make_contact(acme, email="sms@example.test", phone="+1 555 010 2000")
    run(texts, number)
    assert "Not sent: suppressed: added by hand on " in _page(client, auth, alice, number)
    nophone = make_contact(acme, email="nophone@example.test", phone="")
    run(texts, nophone)
    assert "Not sent: contact has no phone number" in _page(client, auth, alice, nophone)
    assert smtp_server.messages == []


def test_a_skip_at_hand_over_shows_too(client, auth, acme, alice, smtp_server, monkeypatch):
    """Suppressed while its message waited: the step says so, not "sent"."""
    from app.automation.engine.jobs import drain

    contact = make_contact(acme, email="late@example.test")
    workflow = _mail(acme, alice)
    # Write the message but hand nothing over yet.
    monkeypatch.setattr("app.automation.delivery.dispatcher.deliver_due", lambda **kw: 0)
    with firm_context(acme.id):
        from app.automation.engine.enrollment import enroll

        enroll(workflow, [contact.id], trigger_type="manual")
    drain()
    monkeypatch.undo()
    with firm_context(acme.id):
        db.session.add(Suppression(address="late@example.test", reason="complaint"))
        db.session.commit()
    deliver_due()
    drain()
    page = _page(client, auth, alice, contact)
    assert "Not sent: suppressed: spam complaint on " in page
    assert smtp_server.messages == []


def test_a_held_message_says_until_when(client, auth, acme, alice, smtp_server):
    class Closed(gates.Gate):
        name = "test_window"
        stages = frozenset({"step"})

        def check(self, candidate, state):
            return gates.defer(
                candidate.moment + timedelta(days=1), "outside send window", self.name
            )

    CHAIN.append(Closed())
    try:
        contact = make_contact(acme, email="later@example.test")
        run(_mail(acme, alice), contact)
        page = _page(client, auth, alice, contact)
    finally:
        CHAIN.pop()
    assert re.search(r"Held: outside send window \(until \d{4}-\d\d-\d\d \d\d:\d\d UTC ?\)", page)


def test_a_hard_bounce_at_hand_over_shows_the_servers_answer(
    client, auth, acme, alice, smtp_server
):
    contact = make_contact(acme, email="nobody@example.test")
    smtp_server.refuse["nobody@example.test"] = "550 5.1.1 No such user here"
    execution = run(_mail(acme, alice), contact)
    assert states_by_node(acme.id, execution.id)["mail"].action_status == "failed"
    page = _page(client, auth, alice, contact)
    assert "550 5.1.1 No such user here" in page

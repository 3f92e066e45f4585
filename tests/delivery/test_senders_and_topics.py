"""Senders (sending domains, the display name, DKIM verified by dkimpy
against the published record) and topics (List-Id, per-topic opt-outs,
transactional mail ignores marketing opt-outs but never suppressions)."""

from __future__ import annotations

import dkim
import pytest
from sqlalchemy import insert

from app.automation.delivery.dispatcher import deliver_due
from app.extensions import db
from app.models import Suppression, contact_subscriptions
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.api.test_graph import add_node
from tests.delivery.conftest import configured, queue_message, reload
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

DOMAINS = "/api/v1/sending-domains/"
TOPICS = "/api/v1/topics/"


@pytest.fixture
def api(client, token_for, alice):
    return ApiClient(client, token_for(alice))


@pytest.fixture
def api_as(client, token_for):
    return lambda user: ApiClient(client, token_for(user))


EMAIL = {"subject": "News", "body_html": "<p>Hi <a href='https://example.com/a'>a</a></p>"}


def test_a_domain_gets_a_key_shown_only_as_its_dns_record(api):
    created = api.post(DOMAINS, json={"domain": "Mail.Acme.example", "dkim_selector": "s1"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["domain"] == "mail.acme.example" and body["has_dkim_key"] is True
    assert body["dns_record"]["name"] == "s1._domainkey.mail.acme.example"
    assert body["dns_record"]["value"].startswith("v=DKIM1; k=rsa; p=MII")
    assert "dkim_private_key" not in body and "PRIVATE" not in created.get_data(as_text=True)
    assert "PRIVATE" not in api.get(f"{DOMAINS}{body['id']}/").get_data(as_text=True)


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "ok.example", "dkim_selector": "bad selector!"}, "dkim_selector"),
        (
            {"domain": "ok.example", "dkim_private_key": "-----BEGIN NONSENSE-----"},
            "dkim_private_key",
        ),
    ],
)
def test_bad_domains_and_keys_name_the_field(api, payload, field):
    response = api.post(DOMAINS, json=payload)
    assert response.status_code == 400 and field in response.get_json()["error"]["fields"]
    assert api.get(DOMAINS).get_json()["results"] == []


def test_another_firms_domain_is_refused(api_as, alice, charlie):
    assert api_as(charlie).post(DOMAINS, json={"domain": "globex.example"}).status_code == 201
    taken = api_as(alice).post(DOMAINS, json={"domain": "globex.example"})
    assert taken.status_code == 409 and "domain" in taken.get_json()["error"]["fields"]


def test_from_email_must_be_on_a_sending_domain_and_keeps_its_name(api, acme):
    draft = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    foreign = add_node(
        api, draft, "n1", "send_email", {**EMAIL, "from_email": "ceo@globex.example"}
    )
    assert foreign.status_code == 422
    [message] = foreign.get_json()["error"]["fields"]["configuration.from_email"]
    assert "globex.example is not one of your sending domains" in message
    malformed = add_node(api, draft, "n2", "send_email", {**EMAIL, "from_email": "Team <nope"})
    assert "configuration.from_email" in malformed.get_json()["error"]["fields"]
    api.post(DOMAINS, json={"domain": "acme.example"})
    named = add_node(
        api, draft, "n3", "send_email", {**EMAIL, "from_email": "Acme Team <news@acme.example>"}
    )
    assert named.status_code == 201, named.get_json()
    assert named.get_json()["configuration"]["from_email"] == "Acme Team <news@acme.example>"


def test_mail_from_a_domain_with_a_key_is_signed_and_verifies(api, acme, smtp_server):
    record = api.post(DOMAINS, json={"domain": "acme.example", "dkim_selector": "s1"}).get_json()
    message = queue_message(
        acme, "send_email", {**EMAIL, "from_email": "Acme Team <news@acme.example>"}
    )
    assert message.message_id.endswith("@acme.example>")  # the sender's domain
    deliver_due()
    [received] = smtp_server.messages
    raw = received.as_bytes(policy=received.policy.clone(linesep="\r\n"))
    assert received["From"] == "Acme Team <news@acme.example>"
    assert "d=acme.example" in received["DKIM-Signature"] and "s=s1" in received["DKIM-Signature"]
    published = record["dns_record"]

    def dns(name, timeout=5):
        return (
            published["value"].encode() if name.decode().rstrip(".") == published["name"] else b""
        )

    assert dkim.verify(raw, dnsfunc=dns)
    assert not dkim.verify(raw.replace(b"Subject: News", b"Subject: Newz"), dnsfunc=dns)
    assert reload(message).status == "sent"


def _topic(api, name, kind="marketing"):
    return api.post(TOPICS, json={"name": name, "kind": kind}).get_json()


def test_a_topic_opt_out_skips_only_that_topic_and_list_id_names_it(api, acme, smtp_server):
    news, offers = _topic(api, "Newsletter"), _topic(api, "Offers")
    assert news["is_default"] is True and offers["is_default"] is False
    contact = make_contact(acme, email="ann@example.com")
    with firm_context(acme.id):
        db.session.execute(
            insert(contact_subscriptions).values(
                contact_id=contact.id, topic_id=offers["id"], subscribed=False
            )
        )
        db.session.commit()
    skipped = queue_message(acme, "send_email", {**EMAIL, "topic": offers["id"]}, contact=contact)
    assert skipped.status == "skipped"
    assert skipped.response == {"reason": "unsubscribed from topic Offers", "gate": "consent"}
    sent = queue_message(acme, "send_email", EMAIL, contact=contact)  # the default: Newsletter
    assert sent.topic_id == news["id"]
    deliver_due()
    [received] = smtp_server.messages
    assert received["List-Id"] == f'"Newsletter" <newsletter.{news["id"]}.localhost>'


def test_transactional_ignores_marketing_opt_outs_never_suppressions(api, acme, smtp_server, app):
    receipts = _topic(api, "Receipts", kind="transactional")
    opted_out = make_contact(acme, email="out@example.com", unsubscribed=True)
    suppressed = make_contact(acme, email="gone@example.com")
    with firm_context(acme.id):
        db.session.add(Suppression(address="gone@example.com", reason="hard_bounce"))
        db.session.commit()
    with configured(app, UNSUBSCRIBE_MAILTO="unsubscribe@acme.example"):
        receipt = queue_message(
            acme, "send_email", {**EMAIL, "topic": receipts["id"]}, contact=opted_out
        )
        blocked = queue_message(
            acme, "send_email", {**EMAIL, "topic": receipts["id"]}, contact=suppressed
        )
        marketing = queue_message(acme, "send_email", EMAIL, contact=opted_out)
        deliver_due()
    assert reload(blocked).status == "skipped" and reload(marketing).status == "skipped"
    assert reload(marketing).response["reason"] == "unsubscribed from all marketing"
    [received] = smtp_server.messages
    assert received["To"] == "out@example.com" and reload(receipt).status == "sent"
    assert received["List-Unsubscribe"] is None  # transactional: nothing to unsubscribe from


def test_list_unsubscribe_has_a_mailto_when_configured(acme, app, smtp_server):
    with configured(app, UNSUBSCRIBE_MAILTO="unsubscribe@acme.example"):
        queue_message(acme, "send_email", EMAIL)
        deliver_due()
    [received] = smtp_server.messages
    https, mailto = received["List-Unsubscribe"].split(", ")
    assert https.startswith("<http://localhost/t/u/")
    assert mailto.startswith("<mailto:unsubscribe@acme.example?subject=unsubscribe%20")


def test_one_click_opts_out_of_the_messages_topic_only(api, acme, client, app):
    from app.automation.delivery.tracking import make_token
    from app.automation.engine.context import facts_for
    from app.automation.rules.evaluator import evaluate

    news, offers = _topic(api, "Newsletter"), _topic(api, "Offers")
    contact = make_contact(acme, email="ann@example.com")
    message = queue_message(acme, "send_email", {**EMAIL, "topic": offers["id"]}, contact=contact)
    token = make_token("unsubscribe", acme.id, message.id)
    response = client.post(
        f"/t/u/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200 and "Offers" in response.get_data(as_text=True)
    shown = api.get(f"/api/v1/contacts/{contact.id}/").get_json()
    assert shown["unsubscribed"] is False
    assert shown["subscriptions"] == {str(news["id"]): True, str(offers["id"]): False}

    with firm_context(acme.id):
        facts = facts_for(contact.id)
        assert evaluate({"rules": [{"topic": offers["id"], "op": "not_subscribed"}]}, facts)
        assert evaluate({"rules": [{"topic": news["id"], "op": "subscribed"}]}, facts)

    again = api.patch(
        f"/api/v1/contacts/{contact.id}/", json={"subscriptions": {str(offers["id"]): True}}
    )
    assert again.get_json()["subscriptions"][str(offers["id"])] is True
    unknown = api.patch(f"/api/v1/contacts/{contact.id}/", json={"subscriptions": {"999": False}})
    assert unknown.status_code == 400 and "subscriptions" in unknown.get_json()["error"]["fields"]

"""Bursts on the public endpoints: past the limit one client gets 429, and
the app keeps serving everyone else (another address, another endpoint,
another token, another message). Tracking and API tokens are limited by
the token (the message, the API token), never by the address a valid one
comes from: image proxies and backends send from a few addresses. An app of its own with the limiter on (the shared test
app has it off); small limits where the app lets configuration set them,
the real ones otherwise."""

from __future__ import annotations

import re

import pytest

from app.extensions import db, limiter
from app.models import Form
from app.tenancy import firm_context
from tests.factories import make_contact

ATTACKER = {"REMOTE_ADDR": "203.0.113.66"}
BYSTANDER = {"REMOTE_ADDR": "198.51.100.7"}


@pytest.fixture
def limited(app, database_url, redis_url):
    from app import create_app

    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": True,
            "INLINE_SCHEDULER": False,
            "PUBLIC_FORM_RATE_LIMIT": "3/minute",
            "TRACKING_RATE_LIMIT": "3/minute",
            "TRACKING_BAD_TOKEN_LIMIT": "10/minute",
            "API_WRITE_LIMIT_PER_TOKEN": "4/minute",
            "API_WRITE_LIMIT_PER_IP": "6/minute",
        }
    )
    limiter.reset()
    try:
        yield application
    finally:
        limiter.reset()
        limiter.enabled = bool(app.config.get("RATELIMIT_ENABLED"))


def _form(firm) -> str:
    with firm_context(firm.id):
        form = Form(name="Signup", fields=[{"name": "email", "type": "email", "required": True}])
        db.session.add(form)
        db.session.commit()
        return form.form_key


def _form_token(client, key: str, environ: dict) -> str:
    page = client.get(f"/f/{key}", environ_base=environ).get_data(as_text=True)
    return re.search(r'name="_form_token" value="([^"]+)"', page).group(1)


def test_a_form_burst_is_cut_at_the_limit_and_others_still_submit(limited, acme):
    key = _form(acme)
    with limited.test_client() as client:
        token = _form_token(client, key, ATTACKER)
        burst = [
            client.post(
                f"/f/{key}",
                data={"_form_token": token, "email": f"spam{n}@example.com"},
                environ_base=ATTACKER,
            ).status_code
            for n in range(8)
        ]
        other = client.post(
            f"/f/{key}",
            data={"_form_token": _form_token(client, key, BYSTANDER), "email": "real@example.com"},
            environ_base=BYSTANDER,
        )
        # Another endpoint, same address: the form page itself still loads.
        page = client.get(f"/f/{key}", environ_base=ATTACKER)
    assert burst == [200, 200, 200] + [429] * 5
    assert other.status_code == 200
    assert page.status_code == 200
    with firm_context(acme.id):
        from app.models import FormSubmission

        assert db.session.query(FormSubmission).count() == 4
    print("\nform burst: 8 posts, 5 refused (429), bystander served")


def test_a_click_burst_is_cut_at_the_limit_and_others_still_click(limited, acme):
    """Junk tokens count as much as real ones (a 404 is still work)."""
    with limited.test_client() as client:
        statuses = [
            client.get(f"/t/c/junk{n}", environ_base=ATTACKER).status_code for n in range(15)
        ]
        other = client.get("/t/c/junk-bystander", environ_base=BYSTANDER)
        pixel = client.get("/t/o/junk.gif", environ_base=ATTACKER)
        health = client.get("/healthz", environ_base=ATTACKER)
    assert statuses == [404] * 10 + [429] * 5
    assert other.status_code == 404  # served (a junk token), not limited
    assert pixel.status_code == 404
    assert health.status_code == 200
    print("\nclick burst: 15 requests, 5 refused (429), bystander served")


def _sent_messages(firm, count: int) -> list[int]:
    from app.automation.delivery.outbox import build_outbox_row
    from app.models import OutboxMessage
    from tests.delivery.conftest import make_execution
    from tests.factories import make_workflow

    workflow = make_workflow(
        firm,
        nodes=[
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi", "body_text": "Hi"},
            }
        ],
    )
    ids = []
    for n in range(count):
        contact = make_contact(firm, email=f"reader{n}@example.com")
        execution = make_execution(firm, workflow, contact, current_node="mail")
        with firm_context(firm.id):
            row = build_outbox_row(
                firm_id=firm.id,
                execution=execution,
                node=workflow.nodes[0],
                visit=1,
                context=None,
                contact=contact,
            )
            message = OutboxMessage(**{**row, "status": "sent"})
            db.session.add(message)
            db.session.commit()
            ids.append(message.id)
    return ids


def test_an_image_proxy_fetching_many_messages_is_never_limited_by_its_address(limited, acme):
    """One address (a proxy) opens 12 messages, past the bad-token limit of
    10 per address; a single message replayed is cut at 3 per message, and
    the proxy's next message still loads."""
    from app.automation.delivery.tracking import make_token

    messages = _sent_messages(acme, 13)
    with limited.app_context():
        pixels = [f"/t/o/{make_token('open', acme.id, m)}.gif" for m in messages]
    with limited.test_client() as client:
        opens = [client.get(url, environ_base=ATTACKER).status_code for url in pixels[:12]]
        replay = [client.get(pixels[0], environ_base=ATTACKER).status_code for _ in range(3)]
        last = client.get(pixels[12], environ_base=ATTACKER)
    assert opens == [200] * 12
    assert replay == [200, 200, 429]  # the 1st fetch, 2 replays, then the limit
    assert last.status_code == 200
    from app.automation.delivery.tracking_hits import process_hits
    from app.models import TrackingEvent

    process_hits()  # with Redis the hits wait for a worker's batch
    with firm_context(acme.id):
        assert db.session.query(TrackingEvent).count() == 15


def test_an_event_api_burst_is_cut_per_token_and_unknown_tokens_per_address(
    limited, acme, alice, bob, token_for
):
    contact = make_contact(acme)
    attacker, colleague = token_for(alice), token_for(bob)

    def event(headers, environ, n):
        return client.post(
            "/api/v1/events/",
            json={"type": "api", "contact_id": contact.id, "event_id": f"e{n}"},
            headers=headers,
            environ_base=environ,
        )

    with limited.test_client() as client:
        burst = [event(attacker, ATTACKER, n) for n in range(6)]
        # Another valid token from the same address: its own bucket only.
        same_address = [event(colleague, ATTACKER, 10 + n).status_code for n in range(3)]
        # Guessed tokens from that address: limited per address (6 a minute).
        guesses = [
            event({"Authorization": f"Bearer guess{n}"}, ATTACKER, 30 + n).status_code
            for n in range(7)
        ]
        # Another token elsewhere: untouched by the attacker's buckets.
        elsewhere = event(colleague, BYSTANDER, 20)
        # Reads are not limited.
        read = client.get("/api/v1/contacts/", headers=attacker, environ_base=ATTACKER)
    assert [r.status_code for r in burst] == [202] * 4 + [429] * 2
    refused = burst[-1]
    assert refused.json["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert same_address == [202, 202, 202]
    assert guesses == [401] * 6 + [429]
    assert elsewhere.status_code == 202
    assert read.status_code == 200
    print("\nevent burst: 6 writes by one token, 2 refused; 7 guesses, 1 refused")


def test_a_login_burst_is_cut_at_20_a_minute_and_others_still_sign_in(limited, alice):
    from tests.factories import PASSWORD

    def login(client, environ, password):
        page = client.get("/login", environ_base=environ).get_data(as_text=True)
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        return client.post(
            "/login",
            data={"email": alice.email, "password": password, "csrf_token": token},
            environ_base=environ,
        ).status_code

    with limited.test_client() as guesser:
        guesses = [login(guesser, ATTACKER, f"guess{n}") for n in range(21)]
    with limited.test_client() as owner:
        real = login(owner, BYSTANDER, PASSWORD)
    assert guesses == [400] * 20 + [429]
    assert real == 302

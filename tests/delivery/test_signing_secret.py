"""The webhook signing secret: admins read it (API and settings page) and
rotate it; for 24 h after a rotation every delivery carries a signature
with each secret (Standard Webhooks: space-separated ``v1,`` entries), so
a receiver still on the old secret keeps verifying. The receiver's side is
the official ``standardwebhooks`` library, on real deliveries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.automation.delivery.dispatcher import deliver_due
from app.clock import now
from app.extensions import db
from app.models import Firm
from tests.delivery.conftest import queue_message

SETTINGS = "/api/v1/settings/webhooks/"


def _deliver(acme, receiver) -> dict:
    queue_message(acme, "webhook", {"url": receiver.url + "/in", "payload": {"n": "1"}})
    assert deliver_due() == 1
    return receiver.requests[-1]


def _verifies(secret: str, request: dict) -> bool:
    try:
        Webhook(secret).verify(request["body"], request["headers"])
    except WebhookVerificationError:
        return False
    return True


def test_admins_read_the_signing_secret_and_a_receiver_verifies_with_it(
    client, acme, alice, receiver, token_for
):
    answer = client.get(SETTINGS, headers=token_for(alice))
    assert answer.status_code == 200
    secret = answer.json["signing_secret"]
    assert secret == acme.webhook_secret and secret.startswith("whsec_")
    assert answer.json["previous_secret_expires_at"] is None
    assert _verifies(secret, _deliver(acme, receiver))


def test_marketers_and_portal_users_cannot_read_it(client, bob, paula, token_for):
    assert client.get(SETTINGS, headers=token_for(bob)).status_code == 403
    assert client.post(SETTINGS + "rotate/", headers=token_for(bob)).status_code == 403
    assert client.get(SETTINGS, headers=token_for(paula)).status_code == 403


def test_each_firm_reads_its_own_secret(client, acme, globex, alice, charlie, token_for):
    mine = client.get(SETTINGS, headers=token_for(alice)).json["signing_secret"]
    theirs = client.get(SETTINGS, headers=token_for(charlie)).json["signing_secret"]
    assert mine == acme.webhook_secret and theirs == globex.webhook_secret
    assert mine != theirs


def test_a_rotation_signs_with_both_secrets_for_24_hours(
    client, acme, alice, receiver, token_for, time_machine
):
    time_machine.move_to(now(), tick=False)
    old = acme.webhook_secret
    rotated = client.post(SETTINGS + "rotate/", headers=token_for(alice))
    assert rotated.status_code == 200
    new = rotated.json["signing_secret"]
    assert new != old and new.startswith("whsec_")
    expires = rotated.json["previous_secret_expires_at"]
    assert expires is not None
    assert client.get(SETTINGS, headers=token_for(alice)).json["signing_secret"] == new

    request = _deliver(acme, receiver)
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert _verifies(new, request) and _verifies(old, request)

    time_machine.shift(timedelta(hours=24, seconds=1))
    later = _deliver(acme, receiver)
    assert len(later["headers"]["webhook-signature"].split(" ")) == 1
    assert _verifies(new, later)
    assert not _verifies(old, later)
    assert client.get(SETTINGS, headers=token_for(alice)).json["previous_secret_expires_at"] is None


def test_a_second_rotation_keeps_only_the_secret_in_use_before_it(
    client, acme, alice, receiver, token_for
):
    first = acme.webhook_secret
    second = client.post(SETTINGS + "rotate/", headers=token_for(alice)).json["signing_secret"]
    third = client.post(SETTINGS + "rotate/", headers=token_for(alice)).json["signing_secret"]
    request = _deliver(acme, receiver)
    assert _verifies(third, request) and _verifies(second, request)
    assert not _verifies(first, request)


def test_the_settings_page_reveals_the_secret_on_click_and_rotates(client, auth, acme, alice, bob):
    old = acme.webhook_secret
    auth.login(alice)
    page = client.get("/admin/webhooks").get_data(as_text=True)
    assert "<details" in page and acme.webhook_secret in page
    token = auth.csrf_token("/admin/webhooks")
    response = client.post("/admin/webhooks/rotate", data={"csrf_token": token})
    assert response.status_code == 303
    db.session.expire_all()
    firm = db.session.get(Firm, acme.id)
    assert firm.webhook_secret != old and firm.webhook_secret_previous == old
    auth.logout()
    auth.login(bob)
    assert client.get("/admin/webhooks").status_code == 403


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_anonymous_callers_get_401(client, method):
    path = SETTINGS if method == "GET" else SETTINGS + "rotate/"
    assert client.open(path, method=method).status_code == 401

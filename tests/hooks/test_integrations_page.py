"""Settings -> Integrations: subscriptions, recent deliveries, removing one."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.hooks import sender
from app.extensions import db
from app.models import HookSubscription
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, run
from tests.factories import make_contact

PAGE = "/settings/integrations"


def _subscribe(api, url, event, **extra):
    response = api.post(
        "/api/v1/hooks/subscriptions/", json={"target_url": url, "event": event, **extra}
    )
    assert response.status_code == 201, response.json
    return response.json


def test_the_page_lists_subscriptions_and_deliveries_with_answers(
    client, auth, api, acme, alice, bob, receiver
):
    workflow = active_workflow(acme, alice, *chain(("t", "add_tag", {"tag": "x"})))
    _subscribe(api, receiver.url + "/done", "execution.completed", workflow=workflow.id)
    receiver.statuses = [503]
    run(workflow, make_contact(acme))
    assert sender.deliver_due() == 1
    auth.login(bob)  # a marketer
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "execution.completed" in html and receiver.url + "/done" in html
    assert workflow.name in html
    assert "HTTP 503" in html and "next try" in html
    assert '{"ok": false}' in html or "{&#34;ok&#34;: false}" in html  # the receiver's answer
    assert "data-confirm=" in html


def test_removing_asks_and_removes(client, auth, api, acme, alice, receiver):
    sub = _subscribe(api, receiver.url + "/x", "goal.reached")
    auth.login(alice)
    token = auth.csrf_token(PAGE)
    response = client.post(f"{PAGE}/{sub['id']}/delete", data={"csrf_token": token})
    assert response.status_code == 303
    with firm_context(acme.id):
        assert db.session.scalars(select(HookSubscription)).all() == []
    assert "No subscriptions" in client.get(PAGE).get_data(as_text=True)


def test_another_firms_subscription_is_404(client, auth, api_as, charlie, alice, receiver):
    theirs = _subscribe(api_as(charlie), receiver.url + "/theirs", "goal.reached")
    auth.login(alice)
    token = auth.csrf_token(PAGE)
    assert receiver.url + "/theirs" not in client.get(PAGE).get_data(as_text=True)
    response = client.post(f"{PAGE}/{theirs['id']}/delete", data={"csrf_token": token})
    assert response.status_code == 404


def test_portal_users_get_403(client, paula, token_for):
    assert client.get(PAGE, headers=token_for(paula)).status_code == 403

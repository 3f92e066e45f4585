"""The backstop behind the template bounds (issue 19 item 1: "safe even if
a bound is missed"): a filter that allocates gigabytes, or spins, in C
where no weight check looks -- installed by the test alone
(tests/security/hogs.py) -- gets a clear error from the preview, the test
send, the save-time check and the API within about a second, and the web
process grows by less than 50 MB: those renders run in a forked helper
with a memory and a CPU limit (app/automation/templating/isolation.py).
The worker's side is tests/faults/test_template_memory.py."""

from __future__ import annotations

import os
import select as io_select
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from app.automation.engine import test_runs
from app.automation.templating.render import render_isolated, render_text, template_errors
from app.extensions import db
from app.models import WorkflowNode
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.factories import make_contact, make_workflow
from tests.security import hogs
from tests.security.memory import rss
from tests.web.conftest import HX

GROWTH = 50 << 20
MEMORY = "{{ 1|hog_lazy }}"  # 10 GB mapped in one call
RESIDENT = "{{ 1|hog_touch }}"  # 1 GB written
SPIN = "{{ 1|hog_spin }}"  # seconds of CPU in one C call


@pytest.fixture
def hog_filters():
    hogs.install()
    yield
    hogs.uninstall()


@contextmanager
def peak_growth():
    """The peak growth of this process's resident size meanwhile (sampled)."""
    before = rss()
    seen = {"peak": before}
    done = threading.Event()

    def sample():
        while not done.wait(0.002):
            seen["peak"] = max(seen["peak"], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    figures: dict = {}
    began = time.monotonic()
    try:
        yield figures
    finally:
        figures["seconds"] = time.monotonic() - began
        done.set()
        sampler.join()
        figures["growth"] = max(seen["peak"], rss()) - before


@pytest.fixture
def mail_node(client, auth, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi", "body_text": "Hello"},
            }
        ],
    )
    auth.login(alice)
    return workflow, auth.csrf_token("/automation")


def test_the_preview_answers_a_missed_bound_with_a_clear_error(client, mail_node, hog_filters):
    workflow, token = mail_node
    url = f"/automation/builder/{workflow.id}/nodes/mail/preview"
    # Writing 512 MB takes over a second on a loaded virtual machine (page
    # faults); the helper's wall clock ends it at two.
    # Writing it may also outlast the render's one-second time limit, whose
    # answer is as clear.
    slow = ("too much memory", "took too long")
    for template, seconds, answers in (
        (MEMORY, 1.0, ("too much memory",)),
        (RESIDENT, 2.5, slow),
        (SPIN, 2.5, slow),
    ):
        data = {"csrf_token": token, "label": "Mail", "subject": "Hi", "body_html": template}
        with peak_growth() as figures:
            page = client.post(url, data=data, headers=HX).get_data(as_text=True)
        assert any(answer in page for answer in answers), (template, page)
        assert figures["seconds"] < seconds, (template, figures)
        assert figures["growth"] < GROWTH, (template, figures)
    # The helper that ran out was replaced: the next preview renders.
    data = {
        "csrf_token": token,
        "label": "Mail",
        "subject": "Hi",
        "body_html": "<b>{{ 6 * 7 }}</b>",
    }
    assert "42" in client.post(url, data=data, headers=HX).get_data(as_text=True)


def test_save_test_send_and_api_refuse_it(client, token_for, alice, acme, mail_node, hog_filters):
    workflow, token = mail_node
    with peak_growth() as figures:
        assert template_errors(MEMORY) == ["template used too much memory to render"]
        assert template_errors(SPIN) == ["template used too much memory or time to render"]
    assert figures["seconds"] < 3.5 and figures["growth"] < GROWTH, figures
    base = f"/automation/builder/{workflow.id}/nodes/mail"
    data = {"csrf_token": token, "label": "Mail", "subject": "Hi", "body_html": MEMORY}
    with peak_growth() as figures:
        saved = client.post(base, data=data, headers=HX)
        sent = client.post(f"{base}/send-test", data=data, headers=HX)
    assert figures["seconds"] < 2.0 and figures["growth"] < GROWTH, ("save, send", figures)
    assert saved.status_code == 422 and "too much memory" in saved.get_data(as_text=True)
    assert sent.status_code == 422 and "too much memory" in sent.get_data(as_text=True)
    api = ApiClient(client, token_for(alice))
    response = api.post(
        "/api/v1/automation/nodes/",
        json={
            "workflow": workflow.id,
            "node_id": "hook",
            "node_type": "webhook",
            "configuration": {"url": "https://example.com/h", "payload": {"a": "x", "b": MEMORY}},
        },
    )
    assert response.status_code == 422, response.get_json()
    fields = response.get_json()["error"]["fields"]
    assert fields["configuration.payload.b"] == ["template used too much memory to render"]
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.scalars(select(WorkflowNode.configuration)).one()["body_text"] == "Hello"


def test_a_test_run_from_the_builder_fails_the_step_with_the_reason(acme, alice, hog_filters):
    # A test run walks the workflow inside the web request (engine code,
    # in the web process): its renders go to the helper too.
    nodes = [
        {
            "node_id": "mail",
            "node_type": "send_email",
            "configuration": {"subject": "Hi", "body_html": MEMORY},
        }
    ]
    workflow = make_workflow(acme, nodes=nodes, triggers=[{"trigger_type": "manual"}])
    contact = make_contact(acme)
    with firm_context(acme.id), peak_growth() as figures:
        done = test_runs.test_run(workflow, contact, alice)
    assert done.status == "failed" and "too much memory" in (done.last_error or ""), done
    assert figures["seconds"] < 2.0 and figures["growth"] < GROWTH, ("test run", figures)
    # The same in-process renders outside a test run (the worker's, where
    # the address-space cap stands behind them) are not sent anywhere.
    assert render_text("{{ 6 * 7 }}", {}) == "42"


def test_renders_that_fit_come_back_from_the_helper_as_in_process():
    context = {"contact": {"first_name": "Ada"}}
    assert render_isolated(
        [
            ("Hi {{ contact.first_name }}", context, False),
            ("<p>{{ '<' ~ contact.first_name }}</p>", context, True),
            ("{{ contact.nope.deeper + 1 }}", context, False),
            ("plain", {}, False),
        ]
    )[:2] == ["Hi Ada", "<p>&lt;Ada</p>"]
    error = render_isolated([("{{ 'x' * 10**9 }}", {}, False)])[0]
    assert "too big to render" in str(error)


def test_a_helper_holds_none_of_the_web_process_descriptors():
    """A helper forked while the web process holds a pipe (a browser
    driver's stdin, another helper's requests) or a listening socket must
    not keep it open: the other end would never see it closed."""
    from app.automation.templating import isolation

    read_end, write_end = os.pipe()
    try:
        isolation.stop_helpers()  # the next render forks, holding write_end
        assert render_isolated([("{{ 1 + 1 }}", {}, False)]) == ["2"]
        os.close(write_end)
        write_end = None
        readable = io_select.select([read_end], [], [], 5)[0]
        assert readable and os.read(read_end, 1) == b"", "a helper still holds the pipe"
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)
        isolation.stop_helpers()

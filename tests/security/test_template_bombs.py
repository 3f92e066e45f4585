"""Template resource bombs: values built small, step by step, that C code
(``|string``, ``|tojson``, ``%``, ``~``, ``sum``) would write out at
gigabytes, where the watchdog cannot interrupt it. Each is refused with a
clear :class:`TemplateLimitError` within 1 s and the rendering process
grows by less than 50 MB; saving one is refused naming the field (API and
builder), the preview and the test send show the reason, and at send time
the step fails with it (docs/ARCHITECTURE.md, templating/)."""

from __future__ import annotations

import json
import os
import resource
import signal
import time

import pytest
from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.automation.templating import limits
from app.automation.templating.limits import Watchdog
from app.automation.templating.render import (
    TemplateError,
    render_html,
    render_text,
    template_errors,
)
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution, WorkflowNode
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.engine.helpers import active_workflow, start
from tests.factories import make_contact, make_workflow
from tests.security.memory import rss
from tests.web.conftest import HX

SECONDS = 1.0
GROWTH = 50 << 20

# Each step passes a per-step size check; the last writes it all out.
BIG = "{% set a = [1] * 1000000 %}{% set b = [a] * 1000000 %}"
SMALL = "{% set a = [1] * 10000 %}{% set b = [a] * 10000 %}"  # 10,000x smaller
BOMBS = [
    # The spellings.
    BIG + "{{ b|string }}",
    BIG + "{{ b|tojson }}",
    BIG + "{{ b|sum(start=[]) }}",
    BIG + "{{ '%s' % [b] }}",
    BIG + "{{ b ~ '' }}",
    BIG + "{{ b }}",
    SMALL + "{{ b|string }}",
    # Built small, written out big.
    "{% set a = [1] * 100000 %}{% set b = [a] * 100000 %}{{ b|pprint }}",
    "{% set a = [1] * 100000 %}{{ [a, a, a, a, a, a, a, a, a, a, a, a]|string }}",
    "{% set a = 'x' * 500000 %}{{ {'a': a, 'b': a, 'c': a}|tojson }}",
    "{{ ([[1] * 1000] * 1000)|tojson }}",
    "{% set a = [[1] * 1000] * 300 %}{{ a|tojson(10000) }}",
    "{% set a = [1] * 1000 %}{{ ([a] * 1000)|sum(start=[])|length }}",
    "{% set s = 'x' * 100000 %}{{ '%(a)s' * 1000 % {'a': s} }}",
    "{% set s = 'x' * 100000 %}{{ '%s' * 100 % ((s,) * 100) }}",
    "{% set s = 'x' * 100000 %}{{ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s }}",
    "{% set s = 'x' * 500000 %}{{ (s ~ s) ~ (s ~ s) }}",
    "{% set s = 'x' * 100000 %}{{ ('y' * 10).join([s] * 100) }}",
    "{% set s = 'x' * 100000 %}{{ ([s] * 100)|join('y') }}",
    "{{ 'x' * 10**9 }}",
    "{{ ('\\n' * 500000)|indent(10000) }}",
    "{{ ('\\n' * 500000)|indent('x' * 5000) }}",
    "{{ ('a ' * 400000)|wordwrap(1, wrapstring='x' * 1000) }}",
    "{{ ('a.com ' * 20000)|urlize(target='y' * 100000)|length }}",
    "{% set x = 2 ** 4000 %}{% for i in range(30) %}{% set x = x * x %}{% endfor %}{{ x }}",
    # Doubling by repeated assignment (no mutation is possible).
    "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}"
    "{% endfor %}{{ ns.x|length }}",
    "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}"
    "{% endfor %}{{ ns.x|string|length }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}",
    "{% macro f(n) %}{% if n %}{% set s = f(n - 1) %}{{ s }}{{ s }}{% else %}x{% endif %}"
    "{% endmacro %}{{ f(40)|length }}",
    # Big output collected where the streamed output cap does not look.
    "{% set s = 'x' * 900000 %}{% macro f() %}{% for i in range(10000) %}{{ s }}{% endfor %}"
    "{% endmacro %}{{ f()|length }}",
    "{% set s = 'x' * 900000 %}{% set t %}{% for i in range(10000) %}{{ s }}{% endfor %}"
    "{% endset %}{{ t|length }}",
    "{% set s = 'x' * 900000 %}{% filter upper %}{% for i in range(10000) %}{{ s }}"
    "{% endfor %}{% endfilter %}",
    "{% macro f() %}{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}"
    "{% endfor %}{% endmacro %}{{ f()|length }}",
    "{% set s = 'x' * 1000 %}{% macro f() %}{% for a in s %}{% for b in s %}{% for c in s %}"
    "y{% endfor %}{% endfor %}{% endfor %}{% endmacro %}{{ f()|length }}",
    # Many values each under the cap: the render's budget.
    "{% for i in range(10000) %}{% set s = 'x' * 900000 %}{% endfor %}",
    "{{ range(10000)|map('string')|map('center', 9000)|join|length }}",
    "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{% for i in range(10000) %}{% for j in range(10000) %}xxxx{% endfor %}{% endfor %}",
]


def _measure(template: str, html: bool) -> dict:
    """Renders ``template`` in a forked copy of this process (so a bomb
    that gets through cannot take the test run down with it: 1 GB of
    address space more, killed after 10 s) and reports the time (wall and
    CPU: the second is what the bound is about when the test machine is
    shared), the peak growth of its resident memory and the error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        code = 0
        try:
            limits.watchdog = Watchdog()  # the parent's thread is not here
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as statm:
                size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), hard))
            before = rss()
            began, cpu = time.monotonic(), time.process_time()
            try:
                (render_html if html else render_text)(template, {})
                error, kind = "", "rendered"
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                error, kind = str(exc), type(exc).__name__
            elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            report = {"seconds": elapsed, "cpu": cpu, "growth": peak - before}
            report.update(kind=kind, error=error)
            os.write(write, json.dumps(report).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        return {"seconds": 10.0, "cpu": 10.0, "growth": 0, "kind": "killed", "error": "ran 10 s"}
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    return json.loads(data) if data else {"kind": "crashed", "seconds": 0, "cpu": 0, "growth": 0}


@pytest.mark.parametrize("template", BOMBS)
def test_a_bomb_is_refused_within_a_second_and_50_mb(template):
    report = _measure(template, html=False)
    assert report["kind"] == "TemplateLimitError", report
    assert report["cpu"] < SECONDS, report
    assert report["growth"] < GROWTH, report
    assert "too" in report["error"], report  # too big, too many, too long


def test_html_bodies_are_bounded_the_same():
    for template in (BIG + "{{ b|string }}", BIG + "{{ b|e }}", SMALL + "{{ b|tojson }}"):
        report = _measure(template, html=True)
        assert report["kind"] == "TemplateLimitError", report
        assert report["cpu"] < SECONDS and report["growth"] < GROWTH, report


def test_templates_near_the_limits_still_render():
    # What a real message does stays well inside the bounds (a generous
    # time cap: this is about sizes, on a machine that may be busy).
    slow = {"timeout": 10}
    assert len(render_text("{% set a = 'x' * 100000 %}{{ [a] * 9 }}", {}, **slow)) > 900_000
    assert render_text("{{ ([1, 2, 3] * 1000)|sum }}", {}, **slow) == "6000"
    assert render_text("{{ range(1000)|list|tojson|length }}", {}, **slow) == "4890"
    rows = "{% for i in range(200) %}{% for j in range(100) %}.{% endfor %}{% endfor %}"
    assert len(render_text(rows, {}, **slow)) == 20_000
    macro = "{% macro row(x) %}<td>{{ x }}</td>{% endmacro %}"
    table = macro + "{% for t in contact.tags %}{{ row(t) }}{% endfor %}"
    context = {"contact": {"tags": [f"tag{i}" for i in range(2000)]}}
    assert render_html(table, context, **slow).count("<td>") == 2000


def test_sum_adds_numbers_only_and_bytes_are_refused():
    with pytest.raises(TemplateError, match="sum adds numbers only"):
        render_text("{{ [[1], [2]]|sum(start=[]) }}", {})
    # Nothing checks bytes methods or repetition sizes: no bytes at all.
    for template, error in (
        ("{{ 'x'.encode() * 10**9 }}", "str.encode is not allowed"),
        ("{{ (1).to_bytes(10**9, 'big')|length }}", "to_bytes is not allowed"),
    ):
        report = _measure(template, html=False)
        assert error in report["error"], report
        assert report["cpu"] < SECONDS and report["growth"] < GROWTH, report


# --- where templates are saved, previewed, test-sent and sent ----------------

NODES = "/api/v1/automation/nodes/"
# Each fast to refuse with the limits, slow (seconds, hundreds of MB) without.
SAVED = [
    SMALL + "{{ b|string }}",
    "{% set a = [1] * 3000 %}{% set b = [a] * 3000 %}{{ b|tojson }}",
    "{% set a = [1] * 3000 %}{% set b = [a] * 3000 %}{{ '%s' % [b] }}",
]


@pytest.fixture
def api(client, token_for, alice) -> ApiClient:
    return ApiClient(client, token_for(alice))


def test_the_api_refuses_to_save_a_bomb_naming_the_field(api, acme):
    workflow = make_workflow(acme)
    places = [
        ("send_email", lambda t: {"subject": "Hi", "body_html": t}, "configuration.body_html"),
        ("send_email", lambda t: {"subject": t, "body_text": "x"}, "configuration.subject"),
        (
            "webhook",
            lambda t: {"url": "https://example.com/hook", "payload": {"data": {"x": t}}},
            "configuration.payload.data.x",
        ),
        ("send_sms", lambda t: {"body": t}, "configuration.body"),
    ]
    for i, (node_type, make, field) in enumerate(places):
        for j, template in enumerate(SAVED):
            began = time.monotonic()
            response = api.post(
                NODES,
                json={
                    "workflow": workflow.id,
                    "node_id": f"n{i}_{j}",
                    "node_type": node_type,
                    "configuration": make(template),
                },
            )
            assert time.monotonic() - began < 2 * SECONDS
            assert response.status_code == 422, (field, response.get_json())
            messages = response.get_json()["error"]["fields"][field]
            assert any("too big to render" in m for m in messages), messages
    with firm_context(acme.id):
        assert db.session.scalars(select(WorkflowNode)).all() == []


def test_template_errors_names_the_limit():
    assert template_errors(SAVED[0]) == [
        "template is too big to render: repetition would be too large (333,390,000 > 1,000,000)"
    ]
    # A template that fails only for want of data is left to the send.
    assert template_errors("{{ contact.score + 1 }}") == []


def test_the_builder_refuses_to_save_and_the_preview_explains(client, auth, alice, acme):
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
    token = auth.csrf_token("/automation")
    base = f"/automation/builder/{workflow.id}/nodes/mail"
    for template in SAVED:
        data = {"csrf_token": token, "label": "Mail", "subject": "Hi", "body_html": template}
        began = time.monotonic()
        saved = client.post(base, data=data, headers=HX)
        previewed = client.post(f"{base}/preview", data=data, headers=HX)
        sent = client.post(f"{base}/send-test", data=data, headers=HX)
        assert time.monotonic() - began < 3 * SECONDS
        assert saved.status_code == 422
        assert "too big to render" in saved.get_data(as_text=True)
        assert "too big to render" in previewed.get_data(as_text=True)
        assert sent.status_code == 422
        assert "too big to render" in sent.get_data(as_text=True)
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.scalars(select(WorkflowNode.configuration)).one()["body_text"] == "Hello"


def test_at_send_time_the_step_fails_with_the_reason(acme, alice):
    # Rows written straight to the database skip the save checks: the send
    # path must refuse on its own, quickly, and say why.
    contact = make_contact(acme)
    runs = []
    for template in (BIG + "{{ b|string }}", BIG + "{{ b|tojson }}", SAVED[2]):
        workflow = active_workflow(
            acme,
            alice,
            [
                {
                    "node_id": "mail",
                    "node_type": "send_email",
                    "configuration": {"subject": "Hi", "body_html": template},
                }
            ],
            [],
        )
        runs.append(start(workflow, contact)[0])
    before = rss()
    began = time.monotonic()
    drain()
    elapsed = time.monotonic() - began
    with firm_context(acme.id):
        db.session.expire_all()
        executions = [db.session.get(WorkflowExecution, i) for i in runs]
        assert db.session.scalars(select(OutboxMessage)).all() == []
    for execution in executions:
        assert execution.status == "failed", execution.last_error
        assert "too big to render" in execution.last_error, execution.last_error
    assert elapsed < 3 * SECONDS, elapsed
    assert rss() - before < GROWTH

"""The template sandbox: renders plain data, refuses escapes and bombs fast."""

from __future__ import annotations

import threading
import time

import pytest

from app.automation.templating.render import (
    TemplateError,
    render_html,
    render_text,
    template_errors,
    template_strings_errors,
)

CONTEXT = {"contact": {"first_name": "Ann <b>", "email": "ann@example.com", "custom": {}}}

SSTI_CORPUS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ contact.__class__ }}",
    "{{ contact['__class__'] }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ range.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{{ dict.mro() }}",
    "{{ contact.update(email='x') }}",
    "{{ [].append(1) }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ x.y.__class__ }}",
]

BOMBS = [
    "{% for x in range(10**9) %}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ [0] * 10**9 }}",
    "{{ 10 ** 10 ** 10 ** 10 ** 10 }}",
    "{{ 2 ** 100000 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ [1]|batch(10**9, 'x')|list }}",
    "{% set s = 'a' * 1000 %}{{ s|replace('a', s)|replace('a', s) }}",
    "{% set s = 'x' * 1000000 %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s }}",
    "{% set s = 'x' * 1000000 %}{{ [s, s, s]|join }}",
    # No calls and no output: only the watchdog can stop these.
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    # Huge output.
    "{% for i in range(10000) %}{% for j in range(10000) %}xxxx{% endfor %}{% endfor %}",
]


def test_it_renders_contact_fields():
    assert render_text("Hi {{ contact.first_name }}!", CONTEXT) == "Hi Ann <b>!"


def test_it_escapes_html_in_html_bodies():
    assert render_html("<p>{{ contact.first_name }}</p>", CONTEXT) == "<p>Ann &lt;b&gt;</p>"


def test_missing_fields_render_empty():
    assert render_text("[{{ contact.custom.plan.name }}]", CONTEXT) == "[]"


def test_it_supports_loops_and_namespaces():
    template = "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"
    assert render_text(template, {}) == "6"


@pytest.mark.parametrize("payload", SSTI_CORPUS)
def test_it_refuses_sandbox_escapes(payload):
    with pytest.raises(TemplateError, match="not allowed"):
        render_text(payload, CONTEXT)


@pytest.mark.parametrize("payload", BOMBS)
def test_it_refuses_bombs_within_the_cap(payload):
    started = time.monotonic()
    with pytest.raises(TemplateError):
        render_text(payload, CONTEXT, timeout=0.5)
    assert time.monotonic() - started < 3


def test_a_timed_out_render_leaves_the_thread_usable():
    # (Nested loops run out of the loop budget; calls only of time.)
    with pytest.raises(TemplateError, match="too long"):
        render_text(
            "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
            {},
            timeout=0.2,
        )
    time.sleep(0.3)  # a late watchdog shot would land here
    assert render_text("{{ 1 + 1 }}", {}) == "2"


def test_concurrent_renders_time_out_independently():
    results: dict[str, object] = {}

    def slow():
        try:
            render_text(
                "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
                {},
                timeout=0.3,
            )
        except TemplateError as exc:
            results["slow"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    for _ in range(200):
        assert render_text("{{ contact.email }}", CONTEXT) == "ann@example.com"
    thread.join(5)
    assert isinstance(results["slow"], TemplateError)


def test_it_renders_only_plain_data():
    class Record:
        email = "x@example.com"

    with pytest.raises(TemplateError, match="not plain data"):
        render_text("{{ contact.email }}", {"contact": Record()})


def test_output_cap_is_enforced():
    with pytest.raises(TemplateError, match="output is too long"):
        render_text("{{ 'x' * 2000 }}", {}, max_chars=1000)


def test_template_errors_reports_syntax_and_private_access():
    assert template_errors("Hi {{ contact.first_name }}") == []
    assert "syntax error on line 1" in template_errors("{% if %}")[0]
    assert template_errors("{{ ''.__class__ }}") == ["access to '__class__' is not allowed"]
    assert template_strings_errors({"a": ["ok", "{{ x.__dict__ }}"]}) == {
        "a[1]": ["access to '__dict__' is not allowed"]
    }

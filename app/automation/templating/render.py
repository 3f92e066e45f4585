"""Message templates: Jinja2 in a sandbox, with a time and a size cap.

Marketers write ``{{ contact.first_name }}`` in subjects, bodies, SMS texts
and webhook payloads. Those templates run on our workers, so they get:

- Jinja2's ``ImmutableSandboxedEnvironment`` (no dunder/private attributes,
  no mutation of the context), with a refused attribute raising at once
  instead of rendering as empty;
- a context of plain data only (dicts, lists, strings, numbers, dates):
  never ORM objects, whose methods could reach the database;
- size caps by a value's weight written out (shared items counted each
  time), checked *before* work that could allocate a lot (``range``,
  ``*``/``**``/``%``/``+``, ``~`` concatenation, ``join``, ``replace``,
  serialising and width-taking filters and methods), after everything
  else a template builds, on a budget for the whole render, and on the
  streamed output (:mod:`.limits`); a template that hits one with no data
  at all is refused at save;
- a time cap: every call made by the template checks the deadline, and a
  watchdog thread raises :class:`TemplateTimeout` inside a render that runs
  past it without calling anything (nested loops), via
  ``PyThreadState_SetAsyncExc`` -- no ``sys.settrace``, so normal renders
  pay nothing for it.

- behind those bounds, a process limit for one they miss: the renders a
  web request asks for go to a forked helper with a memory and CPU limit
  (:func:`render_isolated`, :mod:`.isolation`); the worker caps its own
  address space (``worker.py``) and a ``MemoryError`` in a render fails
  the step like any limit.

Two environments: HTML (autoescaped) for e-mail bodies, text (not escaped)
for subjects, SMS and webhook strings.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from markupsafe import Markup

from app.automation.templating import limits
from app.automation.templating.isolation import ChildFailed, isolated
from app.automation.templating.limits import (
    DEFAULT_TIMEOUT,
    MAX_BUILT_CHARS,
    MAX_OUTPUT_CHARS,
    MAX_TEMPLATE_CHARS,
    TemplateTimeout,
    TooLarge,
    render_budget,
    render_deadline,
)
from app.automation.templating.sandbox import GLOBALS, html_env, text_env


class TemplateError(ValueError):
    """A template that cannot be rendered; the message is safe to show."""


class TemplateLimitError(TemplateError):
    """A template that ran into a size or time limit: whatever the data, a
    bomb, so saving it is refused too (:func:`template_errors`)."""


# --- plain-data contexts ----------------------------------------------------

_SCALARS = (str, int, float, bool, type(None), Decimal, _dt.date, _dt.datetime, _dt.time)


_SCALAR_TYPES = frozenset(_SCALARS)


class _NotPlain(Exception):
    pass


def _plain_fast(value: Any, depth: int) -> Any:
    """:func:`_plain` for exact builtin types, without building a path for
    every value (the path is only needed for the error message)."""
    if depth > 20:
        raise _NotPlain
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    if kind is dict:
        return {str(k): _plain_fast(v, depth + 1) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain_fast(v, depth + 1) for v in value]
    raise _NotPlain


def _plain(value: Any, path: str, depth: int = 0) -> Any:
    """A deep copy of ``value`` made of plain data; anything else is refused,
    so an ORM object (and its lazy loads, its session) never reaches a template."""
    if depth == 0:
        try:
            return _plain_fast(value, 0)
        except _NotPlain:
            pass  # subclasses, or the error: the checked walk below
    if depth > 20:
        raise TemplateError(f"context is nested too deeply at {path}")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{path}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise TemplateError(f"context value {path} is a {type(value).__name__}, not plain data")


# --- public API ---------------------------------------------------------------


@lru_cache(maxsize=512)
def _compile(source: str, html: bool):
    env = html_env if html else text_env
    return env.from_string(source)


def _render(source: str, context: dict, *, html: bool, timeout: float, max_chars: int) -> str:
    if not isinstance(source, str):
        raise TemplateError("template must be a string")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template is too long (max {MAX_TEMPLATE_CHARS:,} characters)")
    if "{" not in source:
        # Nothing to evaluate: the common plain subject line.
        return source
    data = _plain(context or {}, "context")
    deadline = time.monotonic() + timeout
    render_deadline.value = deadline
    render_budget.left = MAX_BUILT_CHARS
    try:
        with limits.watchdog.guard(deadline):
            template = _compile(source, html)
            parts: list[str] = []
            size = 0
            # generate() would copy the environment's globals (a ChainMap,
            # slow to iterate) into every render's context; the merge here
            # is the same context, built from a plain dict.
            context = template.new_context({**GLOBALS[html], **data}, shared=True)
            for chunk in template.root_render_func(context):
                size += len(chunk)
                if size > max_chars:
                    raise TemplateLimitError(f"output is too long (max {max_chars:,} characters)")
                parts.append(chunk)
            return "".join(parts)
    except TemplateTimeout:
        raise TemplateLimitError(f"template took too long to render (max {timeout:g}s)") from None
    except TooLarge as exc:
        raise TemplateLimitError(f"template is too big to render: {exc}") from None
    except MemoryError:
        # A bound the sandbox missed, stopped by the process's memory limit
        # (the web's forked child, the worker's RLIMIT_AS: .isolation): the
        # step fails with this reason and the process lives on.
        raise TemplateLimitError("template used too much memory to render") from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"not allowed: {exc}") from None
    except JinjaTemplateError as exc:
        raise TemplateError(str(exc.message or exc)) from None
    except TemplateError:
        raise
    except (ArithmeticError, TypeError, ValueError, LookupError, RecursionError) as exc:
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None
    finally:
        render_deadline.value = None
        render_budget.left = None


_isolate = ContextVar("isolate_renders", default=False)


@contextmanager
def isolated_renders() -> Iterator[None]:
    """Within it, :func:`render_text` and :func:`render_html` go to the
    forked helper (:func:`render_isolated`) one by one: for engine work a
    web request runs in its own process (a test run), where the worker's
    address-space cap does not stand behind the bounds."""
    token = _isolate.set(True)
    try:
        yield
    finally:
        _isolate.reset(token)


def _one(template: str, context: dict, html: bool, timeout: float, max_chars: int) -> str:
    if _isolate.get() and isinstance(template, str) and "{" in template:
        [output] = isolated_outputs([(template, context, html, timeout, max_chars)])
        if isinstance(output, TemplateError):
            raise output
        return output
    return _render_local(template, context, html, timeout, max_chars)


def _render_local(template: str, context: dict, html: bool, timeout: float, max_chars: int) -> str:
    output = _render(template, context, html=html, timeout=timeout, max_chars=max_chars)
    return str(Markup(output)) if html else output


def render_text(
    template: str,
    context: dict,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render a subject, SMS body or webhook string (no HTML escaping)."""
    return _one(template, context, False, timeout, max_chars)


def render_html(
    template: str,
    context: dict,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render an e-mail HTML body; context values are HTML-escaped."""
    return _one(template, context, True, timeout, max_chars)


def _private_names(tree: nodes.Node) -> list[str]:
    found = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Filter):
            # ``x|attr('__class__')`` is a Getattr spelt as a filter.
            if node.name != "attr" or not node.args:
                continue
            key = getattr(node.args[0], "value", None)
        else:
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(key, str) and key.startswith("_"):
            found.append(key)
    return found


def _render_each(items: list[tuple]) -> list[str | TemplateError]:
    # In the helper: never through the isolated_renders() switch, which
    # the helper may have inherited set.
    results: list[str | TemplateError] = []
    for source, context, html, *limits_ in items:
        try:
            results.append(_render_local(source, context, html, *(limits_ or _LIMITS)))
        except TemplateError as exc:
            results.append(exc)
    return results


_LIMITS = (DEFAULT_TIMEOUT, MAX_OUTPUT_CHARS)


def isolated_outputs(items: list[tuple]) -> list[str | TemplateError]:
    if not any(isinstance(item[0], str) and "{" in item[0] for item in items):
        return _render_each(items)  # nothing to evaluate: no child needed
    try:
        return isolated(_render_each, items)
    except ChildFailed as exc:
        return [TemplateLimitError(str(exc)) for _ in items]


def render_isolated(items: list[tuple[str, dict, bool]]) -> list[str | TemplateError]:
    """Each ``(template, context, html)`` rendered, all in one forked child
    with a memory and a CPU limit (:mod:`.isolation`): for renders a web
    request asks for (the preview, a test send, a confirmation e-mail, the
    save-time trial render), so a bound the sandbox missed cannot grow or
    stall the web process. Each item's output or its
    :class:`TemplateError`; a child that ran out of memory or time makes
    every item a :class:`TemplateLimitError` saying so. ``context`` must be
    plain data already loaded: the child never touches the database."""
    return isolated_outputs(items)


def _syntax_problems(template: Any) -> tuple[list[str], bool]:
    """The problems found without rendering, and whether a trial render is
    still needed."""
    if not isinstance(template, str):
        return ["template must be a string"], False
    if len(template) > MAX_TEMPLATE_CHARS:
        return [f"template is too long (max {MAX_TEMPLATE_CHARS:,} characters)"], False
    try:
        tree = text_env.parse(template)
    except TemplateSyntaxError as exc:
        return [f"syntax error on line {exc.lineno}: {exc.message}"], False
    private = [f"access to {name!r} is not allowed" for name in _private_names(tree)]
    return private, not private and "{" in template


def templates_errors(templates: list[str]) -> list[list[str]]:
    """:func:`template_errors` of each template, their trial renders all in
    one forked child (:func:`render_isolated`)."""
    found = [_syntax_problems(template) for template in templates]
    trial = [i for i, (_, render) in enumerate(found) if render]
    outputs = render_isolated([(templates[i], {}, False) for i in trial])
    problems = [errors for errors, _ in found]
    for i, output in zip(trial, outputs, strict=True):
        # A plain TemplateError may well go away with a contact's data: the
        # send decides. A limit reached with no data is a bomb.
        if isinstance(output, TemplateLimitError):
            problems[i] = [str(output)]
    return problems


def template_errors(template: str) -> list[str]:
    """Problems to show when a template is saved (``[]`` when it looks fine):
    syntax errors, attribute access the sandbox will refuse, and a size or
    time limit that a trial render with no data already runs into (a
    template bomb, which no contact's data could make work), that trial
    in a forked child with a memory and CPU limit (:func:`render_isolated`)."""
    return templates_errors([template])[0]


def _strings(values: Any, path: str, found: list[tuple[str, str]]) -> None:
    if isinstance(values, str):
        found.append((path or "value", values))
    elif isinstance(values, dict):
        for key, value in values.items():
            _strings(value, f"{path}.{key}" if path else str(key), found)
    elif isinstance(values, list):
        for i, value in enumerate(values):
            _strings(value, f"{path}[{i}]", found)


def template_strings_errors(values: Any, path: str = "") -> dict[str, list[str]]:
    """``template_errors`` over every string inside a JSON-like value (a
    webhook payload), keyed by dotted path; one child for them all."""
    found: list[tuple[str, str]] = []
    _strings(values, path, found)
    errors = templates_errors([template for _, template in found])
    return {where: problems for (where, _), problems in zip(found, errors, strict=True) if problems}

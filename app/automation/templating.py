"""Message templates: Jinja2 in a sandbox, with a time and a size cap.

Marketers write ``{{ contact.first_name }}`` in subjects, bodies, SMS texts
and webhook payloads. Those templates run on our workers, so they get:

- Jinja2's ``ImmutableSandboxedEnvironment`` (no dunder/private attributes,
  no mutation of the context), with a refused attribute raising at once
  instead of rendering as empty;
- a context of plain data only (dicts, lists, strings, numbers, dates):
  never ORM objects, whose methods could reach the database;
- size caps checked *before* work that could allocate a lot (``range``,
  ``*``/``**``/``%``/``+``, ``~`` concatenation, ``join``, ``replace``,
  width-taking filters and methods) and on the streamed output;
- a time cap: every call made by the template checks the deadline, and a
  watchdog thread raises :class:`TemplateTimeout` inside a render that runs
  past it without calling anything (nested loops), via
  ``PyThreadState_SetAsyncExc`` -- no ``sys.settrace``, so normal renders
  pay nothing for it.

Two environments: HTML (autoescaped) for e-mail bodies, text (not escaped)
for subjects, SMS and webhook strings.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import heapq
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2 import filters as jinja_filters
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace
from markupsafe import Markup

MAX_TEMPLATE_CHARS = 500_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_STRING_CHARS = 1_000_000  # any intermediate string or list
MAX_RANGE = 10_000
MAX_WIDTH = 10_000  # center/indent/ljust/batch/... arguments
MAX_POWER_BITS = 4_096
DEFAULT_TIMEOUT = 1.0


class TemplateError(ValueError):
    """A template that cannot be rendered; the message is safe to show."""


class TemplateTimeout(Exception):
    """Raised inside a render that ran past its deadline (by the watchdog)."""


# --- the watchdog -----------------------------------------------------------


class _Watchdog:
    """One daemon thread that interrupts renders past their deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, int]] = []  # (deadline, guard id, thread id)
        self._active: set[int] = set()
        self._ids = iter(range(1, 1 << 62))
        self._thread: threading.Thread | None = None
        self._next_wake = math.inf  # when the watchdog thread wakes next

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="template-watchdog", daemon=True)
            self._thread.start()

    @contextmanager
    def guard(self, deadline: float) -> Iterator[None]:
        with self._lock:
            self._ensure_thread()
            guard_id = next(self._ids)
            self._active.add(guard_id)
            heapq.heappush(self._heap, (deadline, guard_id, threading.get_ident()))
            # Wake the watchdog only when it would sleep past this deadline:
            # waking it on every render costs a thread switch per message.
            if deadline < self._next_wake:
                self._wake.notify()
        try:
            yield
        finally:
            with self._lock:
                self._active.discard(guard_id)
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._next_wake = math.inf
                    self._wake.wait()
                    continue
                deadline, guard_id, thread_id = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    # The head has the earliest deadline (finished renders'
                    # entries stay until then and are dropped above).
                    self._next_wake = deadline
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                # Fire once, and only while the render is still inside its
                # guard (the guard leaves under this same lock).
                self._active.discard(guard_id)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread_id), ctypes.py_object(TemplateTimeout)
                )


_watchdog = _Watchdog()
_deadline = threading.local()


def _check_deadline() -> None:
    deadline = getattr(_deadline, "value", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateTimeout


# --- size checks ------------------------------------------------------------

_PRINTF_WIDTH = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _too_big(what: str, size: int, limit: int = MAX_STRING_CHARS) -> None:
    if size > limit:
        raise SecurityError(f"{what} would be too large ({size:,} > {limit:,})")


def _check_printf(fmt: str) -> None:
    for width, precision in _PRINTF_WIDTH.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise SecurityError("format width or precision is too large")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else len(str(value))


def _safe_range(*args: int) -> Iterator[int]:
    span = range(*args)
    _too_big("range()", len(span), MAX_RANGE)
    return _ticking(span)


def _ticking(items) -> Iterator:
    for i, item in enumerate(items):
        if i & 255 == 0:
            _check_deadline()
        yield item


def _capped_filter(name: str, check: Callable[..., None]) -> Callable:
    original = jinja_filters.FILTERS[name]

    def wrapper(*args, **kwargs):
        check(*args, **kwargs)
        result = original(*args, **kwargs)
        if isinstance(result, str | list):
            _too_big(f"|{name} result", len(result))
        return result

    # Keep the pass_context / pass_eval_context markers of the original.
    wrapper.__dict__.update(original.__dict__)
    if hasattr(original, "jinja_pass_arg"):
        wrapper.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return wrapper


def _width_arg(position: int, keyword: str) -> Callable[..., None]:
    def check(*args, **kwargs):
        value = kwargs.get(keyword, args[position] if len(args) > position else 0)
        if isinstance(value, int) and value > MAX_WIDTH:
            raise SecurityError(f"{keyword} is too large (max {MAX_WIDTH:,})")

    return check


def _check_replace(*args, **kwargs) -> None:
    # do_replace(eval_ctx, s, old, new, count=None)
    _, s, old, new = (list(args) + [None] * 4)[:4]
    s, old, new = str(s or ""), str(old or ""), str(new or "")
    hits = s.count(old) if old else len(s) + 1
    _too_big("|replace result", len(s) + hits * max(0, len(new) - len(old)))


def _check_join(*args, **kwargs) -> None:
    # do_join(eval_ctx, value, d="", attribute=None)
    items = args[1] if len(args) > 1 else ()
    if isinstance(items, list | tuple):
        sep = str(args[2]) if len(args) > 2 else ""
        _too_big("|join result", sum(_size(v) for v in items) + len(sep) * len(items))


def _check_format(value, *args, **kwargs) -> None:
    _check_printf(str(value))


def _check_batch(value, linecount=0, fill_with=None) -> None:
    if isinstance(linecount, int) and linecount > MAX_WIDTH:
        raise SecurityError(f"batch size is too large (max {MAX_WIDTH:,})")


def _check_slice(value, slices=0, fill_with=None) -> None:
    if isinstance(slices, int) and slices > MAX_WIDTH:
        raise SecurityError(f"slice count is too large (max {MAX_WIDTH:,})")


_CAPPED_FILTERS = {
    "center": _width_arg(1, "width"),
    "indent": _width_arg(1, "width"),
    "wordwrap": _width_arg(2, "width"),
    "truncate": _width_arg(2, "length"),
    "replace": _check_replace,
    "join": _check_join,
    "format": _check_format,
    "batch": _check_batch,
    "slice": _check_slice,
}

# String methods that can allocate far more than their input.
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill"}
_REFUSED_METHODS = {"format", "format_map", "expandtabs"}


# --- the environments -------------------------------------------------------


_PRINTABLE = (str, int, float, Decimal, _dt.date, _dt.time, Undefined, type(None))


def _printable(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _PRINTABLE):
        return True
    if depth < 4 and isinstance(value, list | tuple):
        return all(_printable(v, depth + 1) for v in value)
    if depth < 4 and isinstance(value, dict):
        return all(_printable(k, depth + 1) and _printable(v, depth + 1) for k, v in value.items())
    return False


def _finalize(value: Any) -> Any:
    """What ``{{ ... }}`` prints: plain data only. A class, function, bound
    method or template object prints as nothing, so its repr (module paths,
    memory addresses) never reaches a message."""
    return value if _printable(value) else ""


class _CappedCodeGenerator(CodeGenerator):
    """Routes ``a ~ b`` through a size check (Jinja joins it unchecked)."""

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.capped_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class _CappedSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _CappedCodeGenerator
    # Intercepted operators are never constant-folded at compile time either.
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, autoescape: bool) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=ChainableUndefined,
            cache_size=0,
            finalize=_finalize,
        )
        self.globals = {
            "range": _safe_range,
            "dict": dict,
            "cycler": Cycler,
            "joiner": Joiner,
            "namespace": Namespace,
        }
        self.filters = dict(self.filters)
        for name, check in _CAPPED_FILTERS.items():
            self.filters[name] = _capped_filter(name, check)

    def capped_concat(self, joined: str) -> str:
        # Each part is already bounded; the join of bounded parts is checked
        # here, before it feeds a further concatenation.
        _too_big("string", len(joined))
        return joined

    def unsafe_undefined(self, obj: Any, attribute: str):
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is not allowed"
        )

    def wrap_str_format(self, value: Any):
        if getattr(value, "__name__", None) in ("format", "format_map") and isinstance(
            getattr(value, "__self__", None), str
        ):
            raise SecurityError("str.format is not allowed in templates; use the format filter")
        return None

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            magnitude = abs(left)
            if magnitude > 1 and right > 0:
                _too_big("power", int(right * math.log2(magnitude)), MAX_POWER_BITS)
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _too_big("repetition", len(seq) * max(times, 0))
        elif operator == "%" and isinstance(left, str):
            _check_printf(left)
        elif operator == "+" and isinstance(left, str | list | tuple):
            _too_big("concatenation", _size(left) + _size(right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_deadline()
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str):
            if name in _REFUSED_METHODS:
                raise SecurityError(f"str.{name} is not allowed in templates")
            if name in _WIDTH_METHODS and args and isinstance(args[0], int):
                _too_big(f"str.{name} width", args[0], MAX_WIDTH)
            if name == "replace" and len(args) >= 2:
                _check_replace(None, __obj.__self__, args[0], args[1])
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list) and len(result) > MAX_STRING_CHARS:
            raise SecurityError("a call returned too much data")
        return result


_html_env = _CappedSandbox(autoescape=True)
_text_env = _CappedSandbox(autoescape=False)
_GLOBALS = {True: dict(_html_env.globals), False: dict(_text_env.globals)}


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
    env = _html_env if html else _text_env
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
    _deadline.value = deadline
    try:
        with _watchdog.guard(deadline):
            template = _compile(source, html)
            parts: list[str] = []
            size = 0
            # generate() would copy the environment's globals (a ChainMap,
            # slow to iterate) into every render's context; the merge here
            # is the same context, built from a plain dict.
            context = template.new_context({**_GLOBALS[html], **data}, shared=True)
            for chunk in template.root_render_func(context):
                size += len(chunk)
                if size > max_chars:
                    raise TemplateError(f"output is too long (max {max_chars:,} characters)")
                parts.append(chunk)
            return "".join(parts)
    except TemplateTimeout:
        raise TemplateError(f"template took too long to render (max {timeout:g}s)") from None
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
        _deadline.value = None


def render_text(
    template: str,
    context: dict,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render a subject, SMS body or webhook string (no HTML escaping)."""
    return _render(template, context, html=False, timeout=timeout, max_chars=max_chars)


def render_html(
    template: str,
    context: dict,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_chars: int = MAX_OUTPUT_CHARS,
) -> str:
    """Render an e-mail HTML body; context values are HTML-escaped."""
    return str(Markup(_render(template, context, html=True, timeout=timeout, max_chars=max_chars)))


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


def template_errors(template: str) -> list[str]:
    """Problems to show when a template is saved (``[]`` when it looks fine):
    syntax errors and attribute access the sandbox will refuse."""
    if not isinstance(template, str):
        return ["template must be a string"]
    if len(template) > MAX_TEMPLATE_CHARS:
        return [f"template is too long (max {MAX_TEMPLATE_CHARS:,} characters)"]
    try:
        tree = _text_env.parse(template)
    except TemplateSyntaxError as exc:
        return [f"syntax error on line {exc.lineno}: {exc.message}"]
    return [f"access to {name!r} is not allowed" for name in _private_names(tree)]


def template_strings_errors(values: Any, path: str = "") -> dict[str, list[str]]:
    """``template_errors`` over every string inside a JSON-like value (a
    webhook payload), keyed by dotted path."""
    problems: dict[str, list[str]] = {}
    if isinstance(values, str):
        errors = template_errors(values)
        if errors:
            problems[path or "value"] = errors
    elif isinstance(values, dict):
        for key, value in values.items():
            problems.update(template_strings_errors(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(values, list):
        for i, value in enumerate(values):
            problems.update(template_strings_errors(value, f"{path}[{i}]"))
    return problems

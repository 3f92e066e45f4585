"""Template limits: the size caps and the time cap a render runs under.

Sizes are checked *before* work that could allocate a lot (``range``,
width-taking filters and methods, ``join``, ``replace``, printf widths);
time by :func:`check_deadline` on every call a template makes, and by a
watchdog thread that raises :class:`TemplateTimeout` inside a render that
runs past its deadline without calling anything (nested loops), via
``PyThreadState_SetAsyncExc`` -- no ``sys.settrace``, so normal renders
pay nothing for it. :mod:`templating.sandbox` applies them; see
:mod:`templating` for the whole picture.
"""

from __future__ import annotations

import ctypes
import heapq
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError

MAX_TEMPLATE_CHARS = 500_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_STRING_CHARS = 1_000_000  # any intermediate string or list
MAX_RANGE = 10_000
MAX_WIDTH = 10_000  # center/indent/ljust/batch/... arguments
MAX_POWER_BITS = 4_096
DEFAULT_TIMEOUT = 1.0


class TemplateTimeout(Exception):
    """Raised inside a render that ran past its deadline (by the watchdog)."""


# --- the watchdog -----------------------------------------------------------


class Watchdog:
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


watchdog = Watchdog()
render_deadline = threading.local()


def check_deadline() -> None:
    deadline = getattr(render_deadline, "value", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateTimeout


# --- size checks ------------------------------------------------------------

_PRINTF_WIDTH = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def too_big(what: str, size: int, limit: int = MAX_STRING_CHARS) -> None:
    if size > limit:
        raise SecurityError(f"{what} would be too large ({size:,} > {limit:,})")


def check_printf(fmt: str) -> None:
    for width, precision in _PRINTF_WIDTH.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise SecurityError("format width or precision is too large")


def size_of(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else len(str(value))


def safe_range(*args: int) -> Iterator[int]:
    span = range(*args)
    too_big("range()", len(span), MAX_RANGE)
    return ticking(span)


def ticking(items) -> Iterator:
    for i, item in enumerate(items):
        if i & 255 == 0:
            check_deadline()
        yield item


def capped_filter(name: str, check: Callable[..., None]) -> Callable:
    original = jinja_filters.FILTERS[name]

    def wrapper(*args, **kwargs):
        check(*args, **kwargs)
        result = original(*args, **kwargs)
        if isinstance(result, str | list):
            too_big(f"|{name} result", len(result))
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


def check_replace(*args, **kwargs) -> None:
    # do_replace(eval_ctx, s, old, new, count=None)
    _, s, old, new = (list(args) + [None] * 4)[:4]
    s, old, new = str(s or ""), str(old or ""), str(new or "")
    hits = s.count(old) if old else len(s) + 1
    too_big("|replace result", len(s) + hits * max(0, len(new) - len(old)))


def _check_join(*args, **kwargs) -> None:
    # do_join(eval_ctx, value, d="", attribute=None)
    items = args[1] if len(args) > 1 else ()
    if isinstance(items, list | tuple):
        sep = str(args[2]) if len(args) > 2 else ""
        too_big("|join result", sum(size_of(v) for v in items) + len(sep) * len(items))


def _check_format(value, *args, **kwargs) -> None:
    check_printf(str(value))


def _check_batch(value, linecount=0, fill_with=None) -> None:
    if isinstance(linecount, int) and linecount > MAX_WIDTH:
        raise SecurityError(f"batch size is too large (max {MAX_WIDTH:,})")


def _check_slice(value, slices=0, fill_with=None) -> None:
    if isinstance(slices, int) and slices > MAX_WIDTH:
        raise SecurityError(f"slice count is too large (max {MAX_WIDTH:,})")


CAPPED_FILTERS = {
    "center": _width_arg(1, "width"),
    "indent": _width_arg(1, "width"),
    "wordwrap": _width_arg(2, "width"),
    "truncate": _width_arg(2, "length"),
    "replace": check_replace,
    "join": _check_join,
    "format": _check_format,
    "batch": _check_batch,
    "slice": _check_slice,
}

# String methods that can allocate far more than their input.
WIDTH_METHODS = {"center", "ljust", "rjust", "zfill"}
REFUSED_METHODS = {"format", "format_map", "expandtabs"}

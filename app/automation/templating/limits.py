"""Template limits: the size caps and the time cap a render runs under.

Sizes are measured as :func:`weight`: the length of a value written out,
with a list that holds the same big list a million times counted a
million times (that is what ``|string``, ``|tojson``, ``%`` or ``~`` would
produce, in C code no watchdog can interrupt). The rules:

- every value a template builds (repetition, concatenation, ``%``,
  literals, filter and call results, macro and block output) weighs at
  most :data:`MAX_STRING_CHARS`, checked *before* building it wherever
  building it would cost more than holding references (``*``, ``+``,
  ``~``, ``%``, ``join``, ``replace``, ``indent``, ``wordwrap``, widths);
- what a render builds in all is charged to a budget of
  :data:`MAX_BUILT_CHARS` (:func:`charge`), so a bound missed on one
  operation still leaves the render, and the process, small;
- time by :func:`check_deadline` on every call a template makes, and by a
  watchdog thread that raises :class:`TemplateTimeout` inside a render
  that runs past its deadline without calling anything (nested loops), via
  ``PyThreadState_SetAsyncExc`` -- no ``sys.settrace``, so normal renders
  pay nothing for it.

:mod:`templating.sandbox` applies them; see :mod:`templating` for the
whole picture.
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
from markupsafe import Markup

MAX_TEMPLATE_CHARS = 500_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_STRING_CHARS = 1_000_000  # the weight of any value a template builds
MAX_BUILT_CHARS = 5_000_000  # the weight of everything one render builds
MAX_RANGE = 10_000
MAX_WIDTH = 10_000  # center/indent/ljust/batch/... arguments
MAX_POWER_BITS = 4_096
DEFAULT_TIMEOUT = 1.0


class TemplateTimeout(Exception):
    """Raised inside a render that ran past its deadline (by the watchdog)."""


class TooLarge(SecurityError):
    """A value, or a render's whole work, would pass a size limit."""


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
        raise TooLarge(f"{what} would be too large ({size:,} > {limit:,})")


def check_printf(fmt: str) -> None:
    for width, precision in _PRINTF_WIDTH.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise SecurityError("format width or precision is too large")


_TEXT = (str, bytes, bytearray)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_FLAT = frozenset({int, float, bool, type(None)})
_STRINGS = frozenset({str, Markup})
_WEIGHED = (*_TEXT, *_CONTAINERS)


def weight(value: Any, limit: int = MAX_STRING_CHARS) -> int:
    """About how many characters ``value`` is written out (``str()``,
    ``|tojson``): a string its length, a container its items plus two per
    item, a shared item each time it appears. Counting stops once past
    ``limit`` (the result is then some number above it), so a huge value
    costs no more to weigh than a value at the limit."""
    kind = type(value)
    if kind is str or kind is Markup:
        return len(value)
    try:
        return _weigh(value, limit, {})
    except RecursionError:
        raise TooLarge("a value is nested too deeply") from None


def _weigh(item: Any, limit: int, seen: dict[int, int]) -> int:
    if isinstance(item, _TEXT):
        return len(item) + 2
    if not isinstance(item, _CONTAINERS):
        if isinstance(item, int):
            return 1 + item.bit_length() // 3
        return 4 if type(item) in _FLAT else 20  # a date, a namespace: small
    known = seen.get(id(item))
    if known is not None:
        return known  # the same list again: its weight again, not its walk
    if isinstance(item, dict):
        total = 2 + 4 * len(item)
        items: Any = [*item.keys(), *item.values()] if total <= limit else ()
    else:
        total = 2 + 2 * len(item)
        items = item if total <= limit else ()
    if items:
        # Whole lists of numbers or of strings are weighed in C.
        kinds = set(map(type, items))
        if kinds == {int}:
            total += len(items) + sum(map(int.bit_length, items)) // 3
        elif kinds <= _FLAT:
            total += 20 * len(items)
        elif kinds <= _STRINGS:
            total += sum(map(len, items)) + 2 * len(items)
        else:
            for sub in items:
                total += _weigh(sub, limit - total, seen)
                if total > limit:
                    break
    seen[id(item)] = total
    return total


class _Budget(threading.local):
    left: int | None = None


render_budget = _Budget()


def charge(what: str, value: Any) -> Any:
    """``value``, once it is known to weigh at most MAX_STRING_CHARS and its
    weight is taken from the current render's budget."""
    kind = type(value)
    if kind is str or kind is Markup:
        size = len(value)
    elif isinstance(value, _WEIGHED):
        size = weight(value)
    else:
        return value  # a number, a date, an iterator: nothing built yet
    if size > MAX_STRING_CHARS:
        too_big(what, size)
    left = render_budget.left
    if left is not None:
        render_budget.left = left = left - size
        if left < 0:
            raise TooLarge(BUILDS_TOO_MUCH)
    return value


BUILDS_TOO_MUCH = f"the template builds too much data (max {MAX_BUILT_CHARS:,} characters in all)"
LOOPS_TOO_MUCH = "the template loops too many times"


def spend(size: int, message: str = BUILDS_TOO_MUCH) -> None:
    left = render_budget.left
    if left is not None:
        left -= size
        render_budget.left = left
        if left < 0:
            raise TooLarge(message)


def size_of(value: Any) -> int:
    return weight(value)


def safe_range(*args: int) -> range:
    span = range(*args)
    too_big("range()", len(span), MAX_RANGE)
    return span  # a loop over it ticks (:func:`ticking`)


def ticking(items) -> Iterator:
    """What every ``{% for %}`` iterates (templating.sandbox wraps each
    loop's iterable): the deadline checked, and eight characters of
    the budget charged, per item -- a loop inside a macro or a ``{% set %}``
    block collects its output until the block ends."""
    count = 0
    for count, item in enumerate(items, 1):
        if count & 255 == 0:
            check_deadline()
            spend(2048, LOOPS_TOO_MUCH)
        yield item
    spend(8 * (count & 255), LOOPS_TOO_MUCH)


def capped_filter(name: str, check: Callable[..., None] | None) -> Callable:
    """Jinja's filter ``name`` with ``check`` run on its arguments first and
    its result charged (:func:`charge`)."""
    original = jinja_filters.FILTERS[name]
    what = f"|{name} result"

    if check is None:

        def wrapper(*args, **kwargs):
            return charge(what, original(*args, **kwargs))

    else:

        def wrapper(*args, **kwargs):
            check(*args, **kwargs)
            return charge(what, original(*args, **kwargs))

    # Keep the pass_context / pass_eval_context markers of the original.
    wrapper.__dict__.update(getattr(original, "__dict__", {}))
    if hasattr(original, "jinja_pass_arg"):
        wrapper.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return wrapper


def _arg(args: tuple, kwargs: dict, position: int, keyword: str, default: Any = None) -> Any:
    if keyword in kwargs:
        return kwargs[keyword]
    return args[position] if len(args) > position else default


def _width_arg(position: int, keyword: str) -> Callable[..., None]:
    def check(*args, **kwargs):
        value = _arg(args, kwargs, position, keyword, 0)
        if isinstance(value, int) and value > MAX_WIDTH:
            raise TooLarge(f"{keyword} is too large (max {MAX_WIDTH:,})")

    return check


def _written_out(position: int) -> Callable[..., None]:
    """For filters that serialise their value (``|string``, ``|tojson``,
    ``|e``): the value's weight, before the C code that writes it out."""

    def check(*args, **kwargs):
        if len(args) > position:
            too_big("value to write out", weight(args[position]))

    return check


def check_replace(*args, **kwargs) -> None:
    # do_replace(eval_ctx, s, old, new, count=None)
    _, s, old, new = (list(args) + [None] * 4)[:4]
    s, old, new = str(s or ""), str(old or ""), str(new or "")
    hits = s.count(old) if old else len(s) + 1
    too_big("|replace result", len(s) + hits * max(0, len(new) - len(old)))


def check_join(items: Any, separator: Any) -> None:
    """``separator.join(items)``: the items' weight and one separator each."""
    if isinstance(items, list | tuple | set | frozenset | dict):
        too_big("join result", weight(items) + len(str(separator)) * len(items))


def _check_join(*args, **kwargs) -> None:
    # do_join(eval_ctx, value, d="", attribute=None)
    check_join(_arg(args, kwargs, 1, "value", ()), _arg(args, kwargs, 2, "d", ""))


def check_percent(fmt: str, values: Any) -> None:
    """``fmt % values``: printf widths, and each ``%`` writing at most all
    of ``values`` out."""
    check_printf(fmt)
    count = fmt.count("%")
    if count:
        too_big("% formatting result", len(fmt) + count * weight(values))


def _check_format(value, *args, **kwargs) -> None:
    check_percent(str(value), kwargs or args)


def _check_indent(*args, **kwargs) -> None:
    # do_indent(s, width=4, first=False, blank=False); width may be a string
    s = str(_arg(args, kwargs, 0, "s", ""))
    width = _arg(args, kwargs, 1, "width", 4)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    if isinstance(width, int) and width > MAX_WIDTH:
        raise TooLarge(f"width is too large (max {MAX_WIDTH:,})")
    too_big("|indent result", len(s) + pad * (s.count("\n") + 1))


def _check_wordwrap(*args, **kwargs) -> None:
    # do_wordwrap(environment, s, width=79, break_long_words=True, wrapstring=None, ...)
    s = str(_arg(args, kwargs, 1, "s", ""))
    width = _arg(args, kwargs, 2, "width", 79)
    wrap = _arg(args, kwargs, 4, "wrapstring", None)
    if isinstance(width, int) and width > MAX_WIDTH:
        raise TooLarge(f"width is too large (max {MAX_WIDTH:,})")
    lines = len(s) // max(width if isinstance(width, int) else 1, 1) + s.count("\n") + 1
    too_big("|wordwrap result", 2 * len(s) + lines * len(str(wrap or "\n")))


def _check_tojson(*args, **kwargs) -> None:
    # do_tojson(eval_ctx, value, indent=None)
    indent = _arg(args, kwargs, 2, "indent", None)
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= 8):
        raise SecurityError("tojson indent must be a number from 0 to 8")
    size = weight(_arg(args, kwargs, 1, "value", None))
    too_big("|tojson result", size * (1 + (indent or 0)))


def _check_sum(*args, **kwargs) -> None:
    # do_sum(environment, iterable, attribute=None, start=0): adding lists or
    # strings is quadratic in C, so only numbers are summed.
    start = _arg(args, kwargs, 3, "start", 0)
    if not isinstance(start, int | float) or isinstance(start, bool):
        raise SecurityError("sum adds numbers only (start must be a number)")


def _check_urlize(*args, **kwargs) -> None:
    # do_urlize(eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes):
    # every link found gets target and rel written into it.
    s = str(_arg(args, kwargs, 1, "value", ""))
    extra = sum(
        len(str(_arg(args, kwargs, i, k, "") or "")) for i, k in ((4, "target"), (5, "rel"))
    )
    links = s.count(".") + s.count("@") + s.count(":")
    too_big("|urlize result", 3 * len(s) + links * (extra + 80))


def _check_batch(value, linecount=0, fill_with=None) -> None:
    if isinstance(linecount, int) and linecount > MAX_WIDTH:
        raise TooLarge(f"batch size is too large (max {MAX_WIDTH:,})")


def _check_slice(value, slices=0, fill_with=None) -> None:
    if isinstance(slices, int) and slices > MAX_WIDTH:
        raise TooLarge(f"slice count is too large (max {MAX_WIDTH:,})")


# Checks run before a filter; every filter's result is charged after it.
CAPPED_FILTERS: dict[str, Callable[..., None] | None] = {
    name: None for name in jinja_filters.FILTERS
}
CAPPED_FILTERS.update(
    {
        "center": _width_arg(1, "width"),
        "indent": _check_indent,
        "wordwrap": _check_wordwrap,
        "truncate": _width_arg(2, "length"),
        "replace": check_replace,
        "join": _check_join,
        "format": _check_format,
        "batch": _check_batch,
        "slice": _check_slice,
        "sum": _check_sum,
        "urlize": _check_urlize,
        "tojson": _check_tojson,
        # Filters that write their whole value out as a string.
        "string": _written_out(0),
        "pprint": _written_out(0),
        "e": _written_out(0),
        "escape": _written_out(0),
        "forceescape": _written_out(0),
        "safe": _written_out(0),
        "urlencode": _written_out(0),
        "xmlattr": _written_out(1),
        "list": _written_out(0),
    }
)

# String methods that can allocate far more than their input.
WIDTH_METHODS = {"center", "ljust", "rjust", "zfill"}
# str.encode would hand out bytes, whose methods nothing here checks.
REFUSED_METHODS = {"format", "format_map", "expandtabs", "translate", "encode"}
# Methods of other objects that allocate what their arguments ask for.
REFUSED_ANY_METHODS = {"to_bytes"}

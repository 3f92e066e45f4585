"""The Jinja2 sandboxes templates run in (HTML autoescaped, and text).

``ImmutableSandboxedEnvironment`` (no dunder/private attributes, no
mutation of the context) with a refused attribute raising at once instead
of rendering as empty, ``str.format`` refused, only plain data printed,
and every operator, call and filter that could allocate a lot routed
through the checks of :mod:`templating.limits`.
"""

from __future__ import annotations

import datetime as _dt
import math
from decimal import Decimal
from typing import Any

from jinja2 import ChainableUndefined, Undefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

from app.automation.templating.limits import (
    CAPPED_FILTERS,
    MAX_POWER_BITS,
    MAX_STRING_CHARS,
    MAX_WIDTH,
    REFUSED_METHODS,
    WIDTH_METHODS,
    capped_filter,
    check_deadline,
    check_printf,
    check_replace,
    safe_range,
    size_of,
    too_big,
)

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


class CappedCodeGenerator(CodeGenerator):
    """Routes ``a ~ b`` through a size check (Jinja joins it unchecked)."""

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.capped_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class CappedSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = CappedCodeGenerator
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
            "range": safe_range,
            "dict": dict,
            "cycler": Cycler,
            "joiner": Joiner,
            "namespace": Namespace,
        }
        self.filters = dict(self.filters)
        for name, check in CAPPED_FILTERS.items():
            self.filters[name] = capped_filter(name, check)

    def capped_concat(self, joined: str) -> str:
        # Each part is already bounded; the join of bounded parts is checked
        # here, before it feeds a further concatenation.
        too_big("string", len(joined))
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
        check_deadline()
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            magnitude = abs(left)
            if magnitude > 1 and right > 0:
                too_big("power", int(right * math.log2(magnitude)), MAX_POWER_BITS)
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    too_big("repetition", len(seq) * max(times, 0))
        elif operator == "%" and isinstance(left, str):
            check_printf(left)
        elif operator == "+" and isinstance(left, str | list | tuple):
            too_big("concatenation", size_of(left) + size_of(right))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        check_deadline()
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str):
            if name in REFUSED_METHODS:
                raise SecurityError(f"str.{name} is not allowed in templates")
            if name in WIDTH_METHODS and args and isinstance(args[0], int):
                too_big(f"str.{name} width", args[0], MAX_WIDTH)
            if name == "replace" and len(args) >= 2:
                check_replace(None, __obj.__self__, args[0], args[1])
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list) and len(result) > MAX_STRING_CHARS:
            raise SecurityError("a call returned too much data")
        return result


html_env = CappedSandbox(autoescape=True)
text_env = CappedSandbox(autoescape=False)
GLOBALS = {True: dict(html_env.globals), False: dict(text_env.globals)}

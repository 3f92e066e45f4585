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
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

from app.automation.templating.limits import (
    CAPPED_FILTERS,
    MAX_POWER_BITS,
    MAX_WIDTH,
    REFUSED_ANY_METHODS,
    REFUSED_METHODS,
    WIDTH_METHODS,
    capped_filter,
    charge,
    check_deadline,
    check_join,
    check_percent,
    check_replace,
    safe_range,
    ticking,
    too_big,
    weight,
)

_SEQUENCES = (str, bytes, bytearray, list, tuple)
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
    memory addresses) never reaches a message. A container is weighed
    before ``str()`` writes it out."""
    if type(value) is str:
        return value
    if not _printable(value):
        return ""
    if isinstance(value, list | tuple | dict):
        too_big("value to print", weight(value))
    return value


class CappedCodeGenerator(CodeGenerator):
    """Routes ``a ~ b`` and list, tuple and dict literals through size
    checks (Jinja builds them unchecked)."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # The parts are weighed before str() writes any of them out.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.capped_concat({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def _built(self, visit, node: nodes.Expr, frame: Frame) -> None:
        self.write("environment.built(")
        visit(node, frame)
        self.write(")")

    @optimizeconst
    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._built(super().visit_List, node, frame)

    @optimizeconst
    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if isinstance(frame, Frame) and node.ctx == "store":
            super().visit_Tuple(node, frame)  # ``{% for a, b in ... %}`` targets
        else:
            self._built(super().visit_Tuple, node, frame)

    @optimizeconst
    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._built(super().visit_Dict, node, frame)


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
        self.filters["ticking"] = ticking

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Every loop iterates through ticking() (a filter: a direct call):
        # a deadline check and a budget charge per item, for loops over
        # data as for range().
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "ticking", [], [], None, None, lineno=loop.lineno)
        return tree

    def capped_concat(self, join, parts: tuple) -> str:
        size = 0
        for part in parts:
            size += len(part) if type(part) is str else weight(part)
        too_big("concatenation", size)
        return charge("concatenation", join(parts))

    def built(self, value: Any) -> Any:
        """A list, tuple or dict literal: references only, weighed after."""
        return charge("literal", value)

    def concat(self, parts) -> str:  # type: ignore[override]
        """The join of a macro's, a ``{% set %}`` block's or a
        ``{% filter %}`` block's output: its length checked before joining."""
        if not isinstance(parts, list):
            parts = list(parts)
        too_big("block output", sum(map(len, parts)))
        return charge("block output", "".join(parts))

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
                if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                    # Counted with each repeated item's own weight: [big] * n
                    # is n references, but writes big out n times.
                    too_big("repetition", weight(seq) * max(times, 0))
            if isinstance(left, int) and isinstance(right, int):
                too_big("product", left.bit_length() + right.bit_length(), MAX_POWER_BITS)
        elif operator == "%" and isinstance(left, str):
            check_percent(left, right)
        elif operator == "+" and isinstance(left, _SEQUENCES):
            too_big("concatenation", weight(left) + weight(right))
        return charge("result", super().call_binop(context, operator, left, right))

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
            if name == "join" and args:
                check_join(args[0], __obj.__self__)
        elif isinstance(getattr(__obj, "__self__", None), bytes | bytearray):
            raise SecurityError("bytes methods are not allowed in templates")
        elif name in REFUSED_ANY_METHODS:
            raise SecurityError(f"{name} is not allowed in templates")
        return charge("call result", super().call(__context, __obj, *args, **kwargs))


html_env = CappedSandbox(autoescape=True)
text_env = CappedSandbox(autoescape=False)
GLOBALS = {True: dict(html_env.globals), False: dict(text_env.globals)}

"""The rules language compiled to one SQL condition over contacts.

An audience's count over a million contacts cannot walk them through
:mod:`app.automation.rules.evaluator` one by one; :func:`condition`
compiles the same rule group (docs/CONTRACT.md "Rules") into a boolean SQL
expression over ``contacts`` with the evaluator's meaning, for PostgreSQL
and SQLite. tests/rules/test_sql_parity.py runs a table of rules both ways
on both backends.

The facts an audience sees are a contact's own (no execution): ``context``
is empty, events are any workflow's. Where the evaluator's coercions have
no faithful SQL form (a date typed as text in a custom field, a field
path with dots inside a key, text compared with a date column),
:class:`NotCompilable` says so and the caller evaluates in Python instead
(app/automation/audiences/counting.py).

How a value compares follows the evaluator: a comparison whose value is
known when compiling (a missing field, a boolean column's two values) is
answered by :func:`~app.automation.rules.evaluator.compare` itself; text
compares case-insensitively (``lower``, byte order); a number compares
with numeric text as a number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from app.automation.rules.evaluator import (
    _MISSING,
    EVENT_KINDS,
    _instant,
    _number,
    compare,
)
from app.clock import now
from app.models import (
    Contact,
    Deal,
    Tag,
    Topic,
    TrackingEvent,
    audience_members,
    contact_subscriptions,
    contact_tags,
    list_members,
)

ORDER_OPS = ("gt", "gte", "lt", "lte")
TEXT_COLUMNS = ("email", "first_name", "last_name", "phone", "timezone")
DEAL_TEXT = ("title", "stage", "status")


class NotCompilable(ValueError):
    """The rule has no faithful SQL form; evaluate it in Python."""


def condition(
    rule_group: Mapping | None, dialect: str, workflow_id: int | None = None
) -> ColumnElement:
    """The SQL condition over ``Contact`` that holds exactly when
    ``evaluate(rule_group, facts_for(contact, workflow_id=workflow_id))``
    does (no context): e-mail activity is that workflow's when given (a
    goal's rules), any workflow's when not (an audience's)."""
    if not rule_group:
        return true()
    return _Compiler(dialect, workflow_id).group(rule_group)


def compilable(rule_group: Mapping | None, dialect: str) -> bool:
    try:
        condition(rule_group, dialect, None)
    except NotCompilable:
        return False
    return True


def _const(value: bool) -> ColumnElement:
    return true() if value else false()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Compiler:
    def __init__(self, dialect: str, workflow_id: int | None = None):
        self.postgres = dialect == "postgresql"
        self.workflow_id = workflow_id
        self.moment = now()

    # -- groups and membership rules ------------------------------------------
    def group(self, group: Mapping) -> ColumnElement:
        rules = group.get("rules") or []
        match_any = group.get("match", "all") == "any"
        if not rules:
            return _const(not match_any)
        parts = [self.rule(rule) for rule in rules]
        return or_(*parts) if match_any else and_(*parts)

    def rule(self, rule: Mapping) -> ColumnElement:
        if not isinstance(rule, Mapping):
            raise NotCompilable("a rule must be an object")
        if "rules" in rule:
            return self.group(rule)
        if "tag" in rule:
            wanted = rule["tag"]
            name = wanted.casefold() if isinstance(wanted, str) else wanted
            has = _member(
                select(contact_tags.c.contact_id)
                .join(Tag, Tag.id == contact_tags.c.tag_id)
                .where(self.folded(Tag.name) == name)
            )
            return has if rule.get("op", "has") == "has" else not_(has)
        if "list" in rule:
            wanted = _int_or_none(rule["list"])
            inside = (
                false()
                if wanted is None
                else _member(
                    select(list_members.c.contact_id).where(list_members.c.list_id == wanted)
                )
            )
            return inside if rule.get("op", "in") == "in" else not_(inside)
        if "topic" in rule:
            subscribed = self.topic(_int_or_none(rule["topic"]))
            return subscribed if rule.get("op", "subscribed") == "subscribed" else not_(subscribed)
        if "event" in rule:
            happened = self.event(rule)
            return happened if rule.get("op", "happened") == "happened" else not_(happened)
        if "audience" in rule:
            wanted = _int_or_none(rule["audience"])
            inside = (
                false()
                if wanted is None
                else _member(
                    select(audience_members.c.contact_id).where(
                        audience_members.c.audience_id == wanted
                    )
                )
            )
            return inside if rule.get("op", "in") == "in" else not_(inside)
        return self.field(str(rule.get("field", "")), rule.get("op", "eq"), rule.get("value"))

    def topic(self, topic_id: int | None) -> ColumnElement:
        # As topics.subscribed_facts: a transactional topic always; a
        # marketing one unless opted out of it or unsubscribed from all; a
        # topic the firm does not have, never.
        if topic_id is None:
            return false()
        kind = select(Topic.kind).where(Topic.id == topic_id).scalar_subquery()
        opted_out = _member(
            select(contact_subscriptions.c.contact_id).where(
                contact_subscriptions.c.topic_id == topic_id,
                contact_subscriptions.c.subscribed.is_(False),
            )
        )
        return or_(
            func.coalesce(kind, "") == "transactional",
            and_(kind.is_not(None), Contact.unsubscribed.is_(False), not_(opted_out)),
        )

    def event(self, rule: Mapping) -> ColumnElement:
        kind = EVENT_KINDS.get(rule.get("event"), rule.get("event"))
        where = [
            TrackingEvent.contact_id.is_not(None),
            TrackingEvent.kind == kind,
            TrackingEvent.machine.is_(False),
        ]
        if self.workflow_id is not None:
            where.append(TrackingEvent.workflow_id == self.workflow_id)
        if rule.get("node") is not None:
            where.append(TrackingEvent.node_id == rule["node"])
        if rule.get("within_days"):
            since = self.moment - timedelta(days=int(rule["within_days"]))
            where.append(TrackingEvent.created_at >= since)
        return _member(select(TrackingEvent.contact_id).where(*where))

    # -- field rules ------------------------------------------------------------
    def field(self, path: str, op: str, expected: Any) -> ColumnElement:
        compare(op, _MISSING, expected)  # an unknown operator fails as in Python
        head, _, rest = path.partition(".")
        if head == "contact" and rest.startswith("custom."):
            return self.custom(rest[len("custom.") :], op, expected)
        if head == "contact" and rest in ("id", "score"):
            return self.number(
                getattr(Contact, rest), op, expected, as_text=cast(getattr(Contact, rest), String)
            )
        if head == "contact" and rest in TEXT_COLUMNS:
            return self.text(getattr(Contact, rest), op, expected)
        if head == "contact" and rest == "unsubscribed":
            return self.boolean(Contact.unsubscribed, op, expected)
        if head == "contact" and rest == "created_at":
            return self.instant(Contact.created_at, op, expected)
        if head == "contact" and rest.split(".")[0] in ("custom", "custom_fields", "full_name"):
            raise NotCompilable(f"{path}: compare a custom field as contact.custom.<key>")
        if head == "deal" and rest:
            return self.deal(rest, op, expected)
        # contact.<unknown>, context.* (an audience has no context), or a
        # path into a column's value: missing, as the evaluator finds it.
        return _const(compare(op, _MISSING, expected))

    def deal(self, rest: str, op: str, expected: Any) -> ColumnElement:
        def latest(column):
            return (
                select(column)
                .where(Deal.contact_id == Contact.id, Deal.status == "open")
                .order_by(Deal.id.desc())
                .limit(1)
                .scalar_subquery()
            )

        if rest == "id":
            return self.number(latest(Deal.id), op, expected, as_text=cast(latest(Deal.id), String))
        if rest == "value":
            return self.number(latest(cast(Deal.value, Float)), op, expected)
        if rest in DEAL_TEXT:
            return self.text(latest(Deal.__table__.c[rest]), op, expected)
        if rest == "created_at":
            return self.instant(latest(Deal.created_at), op, expected)
        return _const(compare(op, _MISSING, expected))

    @staticmethod
    def _null_is_missing(value, op: str, expected: Any, present: ColumnElement) -> ColumnElement:
        """``present`` where ``value`` is not NULL, the evaluator's answer for
        a missing value where it is."""
        if compare(op, _MISSING, expected):
            return or_(value.is_(None), present)
        return and_(value.is_not(None), present)

    def _options(self, expected: Any) -> list:
        if isinstance(expected, str):
            return [part.strip() for part in expected.split(",")]
        if not isinstance(expected, list | tuple | set):
            return [expected]
        return list(expected)

    def _either(
        self, op: str, expected: Any, one: Callable[[str, Any], ColumnElement]
    ) -> ColumnElement:
        """The operators built from others: neq, not_contains, in."""
        if op == "neq":
            return not_(one("eq", expected))
        if op == "not_contains":
            return not_(one("contains", expected))
        if op == "in":
            return or_(false(), *(one("eq", option) for option in self._options(expected)))
        return one(op, expected)

    def number(self, value, op: str, expected: Any, *, as_text=None) -> ColumnElement:
        """A numeric value (never a bool); ``as_text`` is how Python writes
        it, for the text operators (None: not comparable as text)."""

        def one(op: str, expected: Any) -> ColumnElement:
            if op == "is_set":
                return true()
            if op == "is_not_set":
                return false()
            wanted = _number(expected)
            if op == "eq":
                if isinstance(expected, bool):
                    return value != 0 if expected else value == 0
                return value == wanted if wanted is not None else false()
            if op in ORDER_OPS:
                if wanted is None:
                    return false()
                return _ordered(op, value, wanted)
            if op in ("contains", "starts_with"):
                if as_text is None:
                    raise NotCompilable("text operators on a decimal value")
                needle = _like_escape(str(expected if expected is not None else "").casefold())
                pattern = f"%{needle}%" if op == "contains" else f"{needle}%"
                return self.folded(as_text).like(pattern, escape="\\")
            raise NotCompilable(op)

        return self._null_is_missing(value, op, expected, self._either(op, expected, one))

    def text(self, value, op: str, expected: Any) -> ColumnElement:
        """A text value (a string, maybe empty)."""

        def one(op: str, expected: Any) -> ColumnElement:
            if op == "is_set":
                return value != ""
            if op == "is_not_set":
                return value == ""
            if op == "eq":
                if isinstance(expected, bool):
                    words = ("true", "yes", "1") if expected else ("false", "no", "0", "")
                    return self.folded(func.trim(value)).in_(words)
                if isinstance(expected, int | float):
                    parsed = self.numeric_text(value)
                    return and_(parsed.is_not(None), parsed == float(expected))
                if isinstance(expected, str):
                    # Two strings compare as text (numbers or dates alike).
                    return self.folded(value) == expected.casefold()
                return false()
            if op in ORDER_OPS:
                wanted = _number(expected)
                if _instant(expected) is not None:
                    raise NotCompilable("text compared in order with a date")
                parts = []
                parsed = self.numeric_text(value)
                if wanted is not None:
                    parts.append(and_(parsed.is_not(None), _ordered(op, parsed, wanted)))
                if isinstance(expected, str):
                    as_text = _ordered(op, self.folded(value), expected.casefold())
                    not_numeric = parsed.is_(None) if wanted is not None else true()
                    parts.append(and_(not_numeric, as_text))
                return or_(false(), *parts)
            if op in ("contains", "starts_with"):
                needle = _like_escape(str(expected if expected is not None else "").casefold())
                pattern = f"%{needle}%" if op == "contains" else f"{needle}%"
                return self.folded(value).like(pattern, escape="\\")
            raise NotCompilable(op)

        return self._null_is_missing(value, op, expected, self._either(op, expected, one))

    def boolean(self, value, op: str, expected: Any) -> ColumnElement:
        when_true, when_false = compare(op, True, expected), compare(op, False, expected)
        if when_true and when_false:
            return true()
        if when_true:
            return value.is_(True)
        if when_false:
            return value.is_(False)
        return false()

    def instant(self, value, op: str, expected: Any) -> ColumnElement:
        """A datetime value."""

        def one(op: str, expected: Any) -> ColumnElement:
            if op == "is_set":
                return true()
            if op == "is_not_set":
                return false()
            if op in ("contains", "starts_with"):
                raise NotCompilable("text operators on a date")
            if isinstance(expected, bool) or _number(expected) is not None:
                return false()
            moment = _instant(expected)
            if moment is None:
                return false()
            if op == "eq":
                return value == moment
            return _ordered(op, value, moment)

        return self._null_is_missing(value, op, expected, self._either(op, expected, one))

    # -- custom fields (JSON) ---------------------------------------------------
    def custom(self, key: str, op: str, expected: Any) -> ColumnElement:
        if not key or "." in key or '"' in key or "\\" in key:
            raise NotCompilable("a custom field key with dots or quotes")
        kind, text_value, number_value, text_number, bool_value = self.json_parts(key)
        on_missing = compare(op, _MISSING, expected)
        if isinstance(expected, str) and _instant(expected) is not None and op in ORDER_OPS:
            raise NotCompilable("a custom field compared in order with a date")
        branches = [
            (kind == "string", self.text(text_value, op, expected)),
            (kind == "number", self.number(number_value, op, expected, as_text=text_number)),
            (kind == "boolean", self.boolean(bool_value, op, expected)),
            (kind.in_(("array", "object")), self.container(key, op, expected)),
            (or_(kind.is_(None), kind == "null"), _const(on_missing)),
        ]
        return or_(*(and_(test, result) for test, result in branches))

    def container(self, key: str, op: str, expected: Any) -> ColumnElement:
        # An array or object: set when not empty; equal to nothing typed in a
        # rule; never containing text (contains over items: NotCompilable).
        empty = self.json_empty(key)
        if op == "is_set":
            return not_(empty)
        if op == "is_not_set":
            return empty
        if op in ("neq", "not_contains"):
            if op == "not_contains":
                raise NotCompilable("contains over a custom field's items")
            return true()
        if op == "contains":
            raise NotCompilable("contains over a custom field's items")
        if op == "starts_with":
            if str(expected if expected is not None else ""):
                raise NotCompilable("starts_with over a custom field's items")
            return true()
        return false()

    def json_parts(self, key: str):
        column = Contact.custom_fields
        if self.postgres:
            item = column.op("->")(literal(key))
            kind = func.jsonb_typeof(item)
            text_value = column.op("->>")(literal(key))
            number_value = case((kind == "number", cast(text_value, Float)), else_=None)
            bool_value = case((kind == "boolean", text_value == "true"), else_=None)
            text_number = case((kind == "number", text_value), else_=None)
            # Read only under the branch ``kind = 'string'`` (custom()), where
            # ``->>`` is the string itself: no CASE per row.
            return kind, text_value, number_value, text_number, bool_value
        path = f'$."{key}"'
        raw_kind = func.json_type(column, path)
        kind = case(
            (raw_kind == "text", "string"),
            (raw_kind.in_(("integer", "real")), "number"),
            (raw_kind.in_(("true", "false")), "boolean"),
            else_=raw_kind,
        )
        extracted = func.json_extract(column, path)
        return (
            kind,
            case((raw_kind == "text", extracted), else_=None),
            case((raw_kind.in_(("integer", "real")), cast(extracted, Float)), else_=None),
            case((raw_kind.in_(("integer", "real")), cast(extracted, String)), else_=None),
            case((raw_kind.in_(("true", "false")), raw_kind == "true"), else_=None),
        )

    def json_empty(self, key: str) -> ColumnElement:
        column = Contact.custom_fields
        if self.postgres:
            return cast(column.op("->")(literal(key)), String).in_(("[]", "{}"))
        return func.json_extract(column, f'$."{key}"').in_(("[]", "{}"))

    # -- text helpers -------------------------------------------------------------
    def folded(self, value) -> ColumnElement:
        """``str.casefold`` in SQL: PostgreSQL's ``lower`` in code-point order
        (a collation would order otherwise); on SQLite, whose ``lower`` is
        ASCII-only, the ``casefold`` function app/db_setup.py registers."""
        if self.postgres:
            return func.lower(value).collate("C")
        return func.casefold(value)

    def numeric_text(self, value) -> ColumnElement:
        """``float(text.strip())`` where the text is a plain number, else NULL."""
        trimmed = func.trim(value)
        if self.postgres:
            pattern = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
            return case((trimmed.op("~")(pattern), cast(trimmed, Float)), else_=None)
        # SQLite: no regular expressions; digits with one optional sign and
        # one optional point (exponents are left to the Python evaluator's
        # rare cases).
        body = func.ltrim(trimmed, "+-")
        plain = and_(
            body != "",
            body != ".",
            not_(body.op("GLOB")("*[^0-9.]*")),
            not_(body.op("GLOB")("*.*.*")),
            func.length(trimmed) - func.length(body) <= 1,
        )
        return case((plain, cast(trimmed, Float)), else_=None)


def _member(contact_ids) -> ColumnElement:
    """``contacts.id IN (<contact ids>)``, the subquery uncorrelated: the
    database reads it once (a hashed set), where a correlated EXISTS under
    an OR would be probed once per contact. The ids are never NULL, so
    ``NOT IN`` means what it says."""
    return Contact.id.in_(contact_ids)


def _ordered(op: str, left, right) -> ColumnElement:
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

"""The inspector form of a node type, declared as data.

A node type lists its form fields (``NodeType.form``) in the order the
inspector shows them. Each field names a configuration key (or a few) and
its ``kind``; the web layer has one generic converter and one macro per
kind (``app/web/builder_forms.py``, ``templates/nodes/_fields.html``), so a
new node type that uses existing kinds touches no web code. Fields that
only show something (merge-field help, the preview) carry no key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormField:
    kind = "none"
    name: str = ""
    label: str = ""
    help: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The configuration keys this field writes."""
        return (self.name,) if self.name else ()


@dataclass(frozen=True)
class Text(FormField):
    """A one-line text box; ``keep`` stores what was typed unstripped."""

    kind = "text"
    type: str = "text"
    required: bool = False
    placeholder: str = ""
    list: str | None = None
    keep: bool = False


@dataclass(frozen=True)
class TextArea(FormField):
    kind = "textarea"
    rows: int = 5
    mono: bool = False
    keep: bool = False


@dataclass(frozen=True)
class Number(FormField):
    """A number box; ``default`` is stored when it is left empty."""

    kind = "number"
    placeholder: str = ""
    whole: bool = False
    default: float | None = None


@dataclass(frozen=True)
class Choice(FormField):
    """A select of fixed ``options`` ((value, text) pairs)."""

    kind = "select"
    options: tuple[tuple[str, str], ...] = ()
    blank: str | None = None


@dataclass(frozen=True)
class UserChoice(FormField):
    """A select of the firm's users' addresses."""

    kind = "user_select"
    blank: str | None = None


@dataclass(frozen=True)
class ListChoice(FormField):
    """A contact list id: a select of the firm's lists (a number box when
    there are none); stored as an int."""

    kind = "list_select"


@dataclass(frozen=True)
class TopicChoice(FormField):
    """A topic id, shown only when the firm has topics; stored as an int."""

    kind = "topic_select"
    blank: str | None = None


@dataclass(frozen=True)
class IdValue(FormField):
    """An id kept through the form without a widget (set through the API)."""

    kind = "id_value"


@dataclass(frozen=True)
class Duration(FormField):
    """An amount and a unit (``<name>_value``, ``<name>_unit``) stored as
    ``hours_key``; a stored ``seconds_key`` is shown in the same box."""

    kind = "duration"
    hours_key: str = ""
    seconds_key: str = ""
    error_keys: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.hours_key,)


@dataclass(frozen=True)
class Rules(FormField):
    """The rule builder: ``match`` and ``rules`` rows."""

    kind = "rules"

    @property
    def keys(self) -> tuple[str, ...]:
        return ("match", "rules")


@dataclass(frozen=True)
class Json(FormField):
    """A JSON object typed into a text area; errors of its templated
    strings are shown under it by path."""

    kind = "json"
    rows: int = 6


@dataclass(frozen=True)
class Headers(FormField):
    """Name/value rows stored as a dict of strings."""

    kind = "headers"
    name: str = "headers"


@dataclass(frozen=True)
class ContactFields(FormField):
    """Contact field/value rows stored as a dict (``unsubscribed`` true/false
    as a boolean)."""

    kind = "contact_fields"
    name: str = "fields"


@dataclass(frozen=True)
class Recipients(FormField):
    """Check boxes of the firm's users; stored as a list of addresses."""

    kind = "recipients"
    name: str = "recipients"


@dataclass(frozen=True)
class Variants(FormField):
    """Split variants: name and weight rows."""

    kind = "variants"
    name: str = "variants"


@dataclass(frozen=True)
class Experiment(FormField):
    """A split's experiment: what converts (``metric``), when it decides
    (``auto_winner``) and the share held out (``holdout_percent``)."""

    kind = "experiment"
    name: str = "experiment"

    @property
    def keys(self) -> tuple[str, ...]:
        return ("metric", "auto_winner", "holdout_percent")


@dataclass(frozen=True)
class WaitTarget(FormField):
    """A fixed UTC date (``until``), or a contact date field with
    ``offset_days`` and a time of day ``at``."""

    kind = "wait_target"

    @property
    def keys(self) -> tuple[str, ...]:
        return ("until", "field", "offset_days", "at")


@dataclass(frozen=True)
class Retry(FormField):
    """An action's ``max_attempts`` and ``retry_backoff_seconds``."""

    kind = "retry"

    @property
    def keys(self) -> tuple[str, ...]:
        return ("max_attempts", "retry_backoff_seconds")


@dataclass(frozen=True)
class SendWindow(FormField):
    """A step's own send window (docs/SENDING.md): the workflow's (key
    absent), none (``null``), or its own days, hours and time zone."""

    kind = "send_window"
    name: str = "send_window"
    label: str = "Send window"


@dataclass(frozen=True)
class Note(FormField):
    """A line of help text."""

    kind = "note"


@dataclass(frozen=True)
class MergeHelp(FormField):
    kind = "merge_help"


@dataclass(frozen=True)
class Preview(FormField):
    """The rendered preview of the templated fields for a chosen contact."""

    kind = "preview"


@dataclass(frozen=True)
class SendTest(FormField):
    """The "send a test to me" button of an e-mail step."""

    kind = "send_test"


KINDS = frozenset(
    cls.kind
    for cls in (
        Text,
        TextArea,
        Number,
        Choice,
        UserChoice,
        ListChoice,
        TopicChoice,
        IdValue,
        Duration,
        Rules,
        Json,
        Headers,
        ContactFields,
        Recipients,
        Variants,
        Experiment,
        WaitTarget,
        Retry,
        SendWindow,
        Note,
        MergeHelp,
        Preview,
        SendTest,
    )
)

"""Bounce classification, in one place: SMTP answers and provider payloads.

``hard``: the address does not take mail (no such user, disabled): it is
suppressed at once. ``soft``: a temporary failure (mailbox full, greylisted,
rate limited): retried, and suppressed after ``SOFT_BOUNCE_LIMIT`` in a
row. ``block``: a permanent refusal of the sender or the content (spam
filter, block list, authentication), not of the address: not retried, not
suppressed (the address is fine; the sending is not).

RFC 3463 enhanced status codes decide first (``5.1.1`` hard, ``4.x.x``
soft, ``5.7.x`` block, ``5.2.2`` mailbox full is soft); answers without
one (Yahoo's "554 delivery error: dd ...") fall back to the basic code and
the words of the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("hard", "soft", "block")

_BASIC = re.compile(r"\s*([245]\d\d)(?![\d.])")
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BLOCK_WORDS = re.compile(
    r"spam|unsolicited|block ?list|blacklist|blocked|spamhaus|reputation|policy|"
    r"unauthenticated|dmarc|spf|dkim|relay access denied|not permitted to relay|"
    r"rejected due to content|banned",
    re.I,
)
_FULL_WORDS = re.compile(r"over quota|quota exceeded|mailbox (is )?full|insufficient storage", re.I)
_UNKNOWN_WORDS = re.compile(
    r"user unknown|unknown user|no such user|does not exist|doesn't exist|not found|"
    r"doesn't have an? .* account|invalid recipient|recipient rejected|mailbox unavailable|"
    r"address rejected|disabled|deactivated|no mailbox",
    re.I,
)


@dataclass(frozen=True)
class Bounce:
    kind: str  # hard | soft | block
    code: int | None = None  # the basic SMTP code (550)
    status: str = ""  # the enhanced status code ("5.1.1")
    text: str = ""  # the answer, one line

    @property
    def suppresses(self) -> bool:
        return self.kind == "hard"

    def detail(self) -> dict:
        return {"code": self.code, "status": self.status, "text": self.text, "kind": self.kind}


def _one_line(text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(str(text or "").split())[:500]


def classify_smtp(code: int | None, text) -> Bounce:
    """An SMTP server's refusal: its basic code and the text of its answer."""
    line = _one_line(text)
    if not code:
        leading = _BASIC.match(line)
        code = int(leading.group(1)) if leading else None
    enhanced = _ENHANCED.search(line)
    status = ".".join(enhanced.groups()) if enhanced else ""
    klass = int(enhanced.group(1)) if enhanced else (int(code) // 100 if code else 0)
    if klass == 4 or (code and 400 <= int(code) < 500):
        return Bounce("soft", code, status, line)
    if klass != 5 and not (code and int(code) >= 500):
        return Bounce("soft", code, status, line)
    if status:
        subject, detail = int(enhanced.group(2)), int(enhanced.group(3))
        if subject == 2 and detail == 2:
            return Bounce("soft", code, status, line)  # mailbox full
        if subject == 7:
            return Bounce("block", code, status, line)
        if subject in (1, 2, 4) and not _BLOCK_WORDS.search(line):
            return Bounce("hard", code, status, line)
    if _FULL_WORDS.search(line):
        return Bounce("soft", code, status, line)
    if _UNKNOWN_WORDS.search(line):
        return Bounce("hard", code, status, line)
    if _BLOCK_WORDS.search(line):
        return Bounce("block", code, status, line)
    return Bounce("hard", code, status, line)


# Provider words for a bounce's kind: ours ("bounce_type"), Amazon SES
# ("bounceType"), Postmark ("Type"), Mailgun ("severity").
_PROVIDER_KINDS = {
    "hard": "hard",
    "soft": "soft",
    "permanent": "hard",
    "transient": "soft",
    "temporary": "soft",
    "hardbounce": "hard",
    "softbounce": "soft",
    "undetermined": None,
}


class UnknownBounceType(ValueError):
    """A provider payload whose bounce kind cannot be told."""


def classify_provider(payload: dict) -> Bounce:
    """A provider's bounce callback. ``bounce_type`` ("hard"/"soft") is
    the contract's field; SES, Postmark and Mailgun spellings are read
    too, and a diagnostic answer (``diagnostic`` / ``smtp_response``) is
    classified like an SMTP answer when no kind is given. An unknown kind
    raises :class:`UnknownBounceType`."""
    text = _one_line(
        payload.get("diagnostic")
        or payload.get("smtp_response")
        or payload.get("diagnosticCode")
        or ""
    )
    code = _code(payload.get("code") or payload.get("smtp_code"))
    given = None
    for key in ("bounce_type", "bounceType", "Type", "severity"):
        if payload.get(key) not in (None, ""):
            given = str(payload[key]).strip().lower()
            break
    if given is not None:
        if given not in _PROVIDER_KINDS:
            raise UnknownBounceType("bounce_type must be hard or soft")
        kind = _PROVIDER_KINDS[given]
        if kind is not None:
            parsed = classify_smtp(code, text) if text else Bounce(kind, code)
            return Bounce(kind, parsed.code, parsed.status, parsed.text)
    if text:
        return classify_smtp(code, text)
    # A callback of the older form (no kind, no answer) counts as soft: it
    # suppresses only when SOFT_BOUNCE_LIMIT of them come in a row.
    return Bounce("soft", code, "", "bounce_type not given")


def _code(value) -> int | None:
    try:
        return int(str(value)[:3]) if value not in (None, "") else None
    except ValueError:
        return None

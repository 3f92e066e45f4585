"""E-mail tracking: signed tokens and the rewriting of outgoing HTML.

Every sent e-mail carries an open pixel (``/t/o/<token>.gif``), links
rewritten to ``/t/c/<token>`` and an unsubscribe link (``/t/u/<token>``).
A token is the firm id, the outbox row id and, for clicks, the URL that was
sent, as compact JSON in URL-safe base64, then ``.`` and an HMAC-SHA256 of
it under a key derived from ``SECRET_KEY`` per kind. So the click endpoint
only ever redirects to a link we put in an e-mail, nobody can mint a token
for another message, and a token of one kind (open) is not accepted as
another (unsubscribe). The signing itself is
:func:`app.automation.delivery.signing.compact_token`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from flask import current_app

from app.automation.delivery import signing

KINDS = ("open", "click", "unsubscribe")


@dataclass(frozen=True)
class TrackingToken:
    kind: str
    firm_id: int
    outbox_id: int
    url: str = ""


class BadToken(Exception):
    """A token that is malformed, tampered with or of the wrong kind."""


def make_token(kind: str, firm_id: int, outbox_id: int, url: str = "") -> str:
    payload = [firm_id, outbox_id, url] if url else [firm_id, outbox_id]
    return signing.compact_token(f"tracking-{kind}", payload)


def read_token(kind: str, token: str) -> TrackingToken:
    if kind not in KINDS or not token or len(token) > 4096:
        raise BadToken
    try:
        payload = signing.read_compact_token(f"tracking-{kind}", token)
    except signing.InvalidToken:
        raise BadToken from None
    if (
        not isinstance(payload, list)
        or len(payload) not in (2, 3)
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in payload[:2])
    ):
        raise BadToken
    url = payload[2] if len(payload) == 3 else ""
    if kind == "click" and not (isinstance(url, str) and _is_http(url)):
        raise BadToken
    return TrackingToken(kind, payload[0], payload[1], url)


def _base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def open_url(firm_id: int, outbox_id: int) -> str:
    return f"{_base_url()}/t/o/{make_token('open', firm_id, outbox_id)}.gif"


def click_url(firm_id: int, outbox_id: int, url: str) -> str:
    return f"{_base_url()}/t/c/{make_token('click', firm_id, outbox_id, url)}"


def unsubscribe_url(firm_id: int, outbox_id: int) -> str:
    return f"{_base_url()}/t/u/{make_token('unsubscribe', firm_id, outbox_id)}"


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def rewrite_links(body_html: str, firm_id: int, outbox_id: int) -> str:
    """Point every http(s) link of an HTML body at the click endpoint.
    ``mailto:``, ``tel:`` and in-page anchors stay as they are."""

    def replace(match: re.Match) -> str:
        prefix, quote, raw = match.groups()
        url = html.unescape(raw).strip()
        if not _is_http(url):
            return match.group(0)
        tracked = html.escape(click_url(firm_id, outbox_id, url), quote=True)
        return f"{prefix}{quote}{tracked}{quote}"

    return _HREF.sub(replace, body_html)


def track_text_links(body_text: str, firm_id: int, outbox_id: int) -> str:
    """The text part's http(s) URLs pointed at the click endpoint, like the
    HTML part's links (a text-only reader's click counts too)."""

    def replace(match: re.Match) -> str:
        url = match.group(0)
        trailing = ""
        while url and url[-1] in ".,;:!?)":
            trailing = url[-1] + trailing
            url = url[:-1]
        return click_url(firm_id, outbox_id, url) + trailing if url else match.group(0)

    return _URL_IN_TEXT.sub(replace, body_text)


def text_to_html(body_text: str) -> str:
    """An HTML alternative for a text-only e-mail (so it can carry the
    pixel and tracked links): escaped, line breaks kept, URLs linked."""
    escaped = html.escape(body_text)

    def link(match: re.Match) -> str:
        url = match.group(0)
        return f'<a href="{url}">{url}</a>'

    linked = _URL_IN_TEXT.sub(link, escaped)
    return f'<div style="white-space:pre-wrap">{linked}</div>'


def decorate_html(body_html: str, firm_id: int, outbox_id: int, unsubscribe: str) -> str:
    """Tracked links, an unsubscribe footer and the open pixel."""
    rewritten = rewrite_links(body_html, firm_id, outbox_id)
    footer = (
        '<p style="font-size:12px;color:#64748b">'
        f'<a href="{html.escape(unsubscribe, quote=True)}">Unsubscribe</a></p>'
    )
    pixel = (
        f'<img src="{html.escape(open_url(firm_id, outbox_id), quote=True)}" '
        'width="1" height="1" alt="" style="display:block;border:0">'
    )
    addition = footer + pixel
    ends = list(_BODY_END.finditer(rewritten))
    if not ends:
        return rewritten + addition
    cut = ends[-1].start()
    return rewritten[:cut] + addition + rewritten[cut:]


def decorate_text(body_text: str, unsubscribe: str) -> str:
    return f"{body_text.rstrip()}\n\n--\nUnsubscribe: {unsubscribe}\n"

"""E-mail tracking: signed tokens and the rewriting of outgoing HTML.

Every sent e-mail carries an open pixel (``/t/o/<token>.gif``), links
rewritten to ``/t/c/<token>`` and an unsubscribe link (``/t/u/<token>``).

Only links the firm wrote are tracked (:class:`LinkPolicy`): a click
redirects from our domain, so a link whose target came from contact data
(``href="{{ contact.custom.site }}"``) would make us an open redirect. A
link is tracked when its URL is literal in the step's template source
(:func:`literal_links`, recorded on the outbox row when it is written), or
when its host is one of the firm's sending domains; any other link goes
out as it is, untracked (docs/SENDING.md, "Click tracking").
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
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

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


def click_url(firm_id: int, outbox_id: int, url: str, made: dict | None = None) -> str:
    """``made``: the click URLs of this message so far, by target (its text
    and HTML parts carry the same links: each token is signed once)."""
    if made is not None and url in made:
        return made[url]
    tracked = f"{_base_url()}/t/c/{make_token('click', firm_id, outbox_id, url)}"
    if made is not None:
        made[url] = tracked
    return tracked


def unsubscribe_url(firm_id: int, outbox_id: int) -> str:
    return f"{_base_url()}/t/u/{make_token('unsubscribe', firm_id, outbox_id)}"


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


# Template syntax (Jinja2's default delimiters, templating/render.py): what
# it spans is not literal. Replaced by a character no URL carries, so the
# link patterns below still see where an expression sits in a URL.
_TEMPLATE_SYNTAX = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
_DYNAMIC = "\x00"
_TRAILING = ".,;:!?)"
# A host as we accept it for the domain rule: letters, digits, dots and
# hyphens, an optional port; no user part, no backslash (which a browser
# reads as a slash where Python's parser does not).
_PLAIN_NETLOC = re.compile(r"[a-z0-9.-]+(:\d{1,5})?", re.IGNORECASE)


def _strip_trailing(url: str) -> str:
    while url and url[-1] in _TRAILING:
        url = url[:-1]
    return url


def literal_links(*sources: str) -> dict[str, list[str]]:
    """The trackable links of a message's template sources (its HTML and
    text bodies): ``exact`` URLs with no template expression in them, and
    ``prefixes`` -- a URL whose scheme, host and path are literal and whose
    query or fragment has merge tags (``https://shop.example/p?id={{
    contact.id }}``) is kept up to its ``?`` or ``#`` included. Stored on
    the outbox row (``payload.links``) and read at send time."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    for source in sources:
        if source:
            found_exact, found_prefixes = _links_of(source)
            exact |= found_exact
            prefixes |= found_prefixes
    return {"exact": sorted(exact), "prefixes": sorted(prefixes)}


@lru_cache(maxsize=256)
def _links_of(source: str) -> tuple[frozenset[str], frozenset[str]]:
    # Cached: every contact of a batch sends the same step's source.
    masked = _TEMPLATE_SYNTAX.sub(_DYNAMIC, source)
    found = [html.unescape(m.group(3)).strip() for m in _HREF.finditer(masked)]
    found += [_strip_trailing(m.group(0)) for m in _URL_IN_TEXT.finditer(masked)]
    exact, prefixes = set(), set()
    for url in found:
        if not _is_http(url):
            continue
        if _DYNAMIC not in url:
            exact.add(url)
            continue
        cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
        if cut > 0 and _DYNAMIC not in url[: cut + 1]:
            prefixes.add(url[: cut + 1])
    return frozenset(exact), frozenset(prefixes)


def _plain_host(url: str) -> str | None:
    """The host of ``url`` when it is plainly written, else None."""
    if any(c in url for c in "\\ \t\r\n") or not _is_http(url):
        return None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    if not _PLAIN_NETLOC.fullmatch(netloc):
        return None
    return netloc.split(":", 1)[0].lower().rstrip(".")


class LinkPolicy:
    """Which links of one message are tracked: those literal in its
    template (``links``, from :func:`literal_links`; None for a row written
    before links were recorded: only the domain rule applies), those on one
    of ``domains`` (the firm's sending domains, or a subdomain of one), and
    ``always`` (our own hidden decoy link)."""

    def __init__(
        self,
        links: dict | None,
        domains: Iterable[str] = (),
        always: Collection[str] = (),
    ):
        links = links if isinstance(links, dict) else {}
        self.exact = {str(u) for u in links.get("exact") or ()} | set(always)
        self.prefixes = tuple(str(p) for p in links.get("prefixes") or ())
        self.domains = tuple(d.lower().rstrip(".") for d in domains if d)

    def tracks(self, url: str) -> bool:
        if url in self.exact or any(url.startswith(p) for p in self.prefixes):
            return True
        if self.domains:
            host = _plain_host(url)
            return host is not None and any(
                host == d or host.endswith("." + d) for d in self.domains
            )
        return False


def rewrite_links(
    body_html: str, firm_id: int, outbox_id: int, policy: LinkPolicy, made: dict | None = None
) -> str:
    """Point the http(s) links of an HTML body that ``policy`` tracks at the
    click endpoint; the others, and ``mailto:``, ``tel:`` and in-page
    anchors, stay as they are. ``made``: as for :func:`click_url`."""

    def replace(match: re.Match) -> str:
        prefix, quote, raw = match.groups()
        url = html.unescape(raw).strip()
        if not _is_http(url) or not policy.tracks(url):
            return match.group(0)
        tracked = html.escape(click_url(firm_id, outbox_id, url, made), quote=True)
        return f"{prefix}{quote}{tracked}{quote}"

    return _HREF.sub(replace, body_html)


def track_text_links(
    body_text: str, firm_id: int, outbox_id: int, policy: LinkPolicy, made: dict | None = None
) -> str:
    """The text part's http(s) URLs that ``policy`` tracks pointed at the
    click endpoint, like the HTML part's links (a text-only reader's click
    counts too). ``made``: as for :func:`click_url`."""

    def replace(match: re.Match) -> str:
        url = _strip_trailing(match.group(0))
        trailing = match.group(0)[len(url) :]
        if not url or not policy.tracks(url):
            return match.group(0)
        return click_url(firm_id, outbox_id, url, made) + trailing

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


def decorate_html(
    body_html: str,
    firm_id: int,
    outbox_id: int,
    unsubscribe: str,
    policy: LinkPolicy,
    made: dict | None = None,
) -> str:
    """Tracked links, an unsubscribe footer and the open pixel."""
    rewritten = rewrite_links(body_html, firm_id, outbox_id, policy, made)
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

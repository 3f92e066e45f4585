"""Honest engagement signals: which opens and clicks were a person's.

Privacy proxies fetch every pixel as the message arrives (Apple Mail
Privacy Protection, whose fetches carry the bare user agent "Mozilla/5.0"),
and link scanners click every link seconds after delivery (Microsoft
Defender Safe Links, Mimecast, Proofpoint, Barracuda...). Such events are
kept and shown on the timeline marked as machine, but conditions, goals,
triggers and analytics count a person's engagement only (analytics shows
the raw figure beside).

A click is a machine's when its user agent is a known scanner or a
program (curl, python-requests, a headless browser), when it comes within
``SCANNER_CLICK_SECONDS`` of the hand-over, when it follows the hidden
decoy link that every e-mail carries (people cannot see it), or when it
comes within a minute of such a decoy click of the same message.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import current_app

from app.clock import ensure_utc

DECOY_PATH = "/t/hp"
SCANNER_CLICK_SECONDS = 10
DECOY_WINDOW = timedelta(seconds=60)

_APPLE_PROXY = re.compile(r"^Mozilla/5\.0$")
_SCANNERS = re.compile(
    r"safelinks|defender|mimecast|proofpoint|ppops|barracuda|trend ?micro|symantec|"
    r"forcepoint|ironport|cisco|zscaler|sophos|fortinet|messagelabs|bingpreview|"
    r"googlebot|bot\b|spider|crawler|scanner|phantomjs|python-requests|"
    r"python-urllib|curl/|wget/|go-http-client|okhttp|java/|libwww|aiohttp|httpx",
    re.IGNORECASE,
)


def decoy_url() -> str:
    return f"{current_app.config['BASE_URL'].rstrip('/')}{DECOY_PATH}"


def decoy_link() -> str:
    """The hidden link added to every HTML body: invisible, out of the tab
    order and of screen readers, so only a machine follows it."""
    return (
        f'<a href="{decoy_url()}" style="display:none!important;font-size:0;color:transparent" '
        'aria-hidden="true" tabindex="-1"></a>'
    )


def open_reason(user_agent: str) -> str | None:
    agent = (user_agent or "").strip()
    if _APPLE_PROXY.match(agent):
        return "privacy proxy (Apple Mail Privacy Protection)"
    if agent and _SCANNERS.search(agent):
        return "security scanner"
    return None


def click_reason(
    user_agent: str,
    url: str,
    sent_at: datetime | None,
    moment: datetime,
    decoy_clicked_at: datetime | None = None,
) -> str | None:
    if url == decoy_url():
        return "followed the hidden link only machines see"
    agent = (user_agent or "").strip()
    if agent and _SCANNERS.search(agent):
        return "link scanner"
    sent_at = ensure_utc(sent_at)
    limit = float(current_app.config.get("SCANNER_CLICK_SECONDS", SCANNER_CLICK_SECONDS) or 0)
    if limit and sent_at is not None and (moment - sent_at).total_seconds() < limit:
        return f"clicked within {limit:g} s of delivery"
    decoy_clicked_at = ensure_utc(decoy_clicked_at)
    if decoy_clicked_at is not None and abs(moment - decoy_clicked_at) <= DECOY_WINDOW:
        return "clicked with the hidden link"
    return None

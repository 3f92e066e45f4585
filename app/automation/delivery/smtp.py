"""E-mail over SMTP: composing the tracked message and handing it over.

Every e-mail gets, at send time (the outbox keeps the body as rendered):
the links its template wrote (``payload.links``) or that point at the
firm's sending domains rewritten to the click endpoint (in the HTML and
the text part; any other link goes out untracked, tracking.py), an
unsubscribe link in both, an open pixel, ``List-Id`` for its topic (RFC
2919) and, unless its topic is transactional, ``List-Unsubscribe`` (https,
plus mailto with UNSUBSCRIBE_MAILTO) + ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` (RFC 8058) headers. A message from a sending
domain with a DKIM key is signed (``dkim_signing``).
A text-only e-mail gets an HTML alternative so it can carry the pixel.
The ``Message-ID`` is the row's, fixed when the step was recorded, so a
repeat after a crash carries the same one and the receiver can drop it.

:class:`SmtpSender` keeps one connection open across the messages of a
batch (STARTTLS and login when configured) and checks an idle connection
with NOOP before reusing it, so a message is never half-sent on a
connection the server already closed.
"""

from __future__ import annotations

import contextlib
import html
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Collection
from email.utils import format_datetime, parseaddr

from app.automation.delivery.engagement import decoy_link, decoy_url
from app.automation.delivery.errors import SendFailed
from app.automation.delivery.mime import _BARE_ADDRESS, build_message
from app.automation.delivery.tracking import (
    LinkPolicy,
    decorate_html,
    decorate_text,
    text_to_html,
    track_text_links,
    unsubscribe_url,
)
from app.clock import now

IDLE_CHECK_SECONDS = 5.0
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(
    r"""<a\b[^>]*?\bhref\s*=\s*(["'])(https?://.*?)\1[^>]*>(.*?)</a\s*>""", re.I | re.S
)
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")


def html_to_text(body_html: str) -> str:
    """A readable plain-text part for an HTML-only e-mail."""
    text = _LINK.sub(lambda m: f"{m.group(3)} ({html.unescape(m.group(2))})", body_html)
    text = re.sub(r"<br\s*/?>|</p\s*>|</div\s*>|</h\d\s*>|</li\s*>", "\n", text, flags=re.I)
    text = html.unescape(_TAGS.sub("", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def compose(row, mailto: str | None = None, link_domains: Collection[str] = ()) -> bytes:
    """The message for an outbox row (an ``OutboxMessage``), ready to send.
    ``mailto`` is UNSUBSCRIBE_MAILTO, a second List-Unsubscribe way;
    ``link_domains`` the firm's sending domains, whose links are tracked
    even when a merge field wrote them."""
    unsubscribe = unsubscribe_url(row.firm_id, row.id)
    policy = LinkPolicy((row.payload or {}).get("links"), link_domains, always=(decoy_url(),))
    body_text = row.body_text or html_to_text(row.body_html)
    body_html = _with_decoy(row.body_html or text_to_html(row.body_text))
    topic = (row.payload or {}).get("topic") or {}
    headers = [
        ("From", row.from_address),
        ("To", row.to_address),
        ("Subject", row.subject),
        ("Date", _date_header()),
        ("Message-ID", row.message_id),
        ("List-Id", list_id(topic, row.from_address)),
    ]
    if topic.get("kind") != "transactional":
        ways = f"<{unsubscribe}>"
        if mailto:
            token = unsubscribe.rsplit("/", 1)[-1]
            ways += f", <mailto:{mailto}?subject=unsubscribe%20{token}>"
        headers += [
            ("List-Unsubscribe", ways),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    made: dict[str, str] = {}  # the click URLs, shared by both parts
    return build_message(
        headers,
        decorate_text(track_text_links(body_text, row.firm_id, row.id, policy, made), unsubscribe),
        decorate_html(body_html, row.firm_id, row.id, unsubscribe, policy, made),
    )


_date_cache: tuple[int, str] = (0, "")


def _date_header() -> str:
    """The Date header of now, formatted once a second (a batch sends many
    messages within one)."""
    global _date_cache
    moment = now()
    second = int(moment.timestamp())
    cached = _date_cache
    if cached[0] != second:
        cached = _date_cache = (second, format_datetime(moment.replace(microsecond=0)))
    return cached[1]


_LABEL = re.compile(r"[^a-z0-9-]+")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _with_decoy(body_html: str) -> str:
    """The hidden decoy link, inside the body (engagement.py)."""
    ends = list(_BODY_END.finditer(body_html))
    if not ends:
        return body_html + decoy_link()
    cut = ends[-1].start()
    return body_html[:cut] + decoy_link() + body_html[cut:]


def list_id(topic: dict, from_address: str) -> str:
    """RFC 2919: ``"Newsletter" <newsletter.3.acme.example>``, one per topic,
    under the sender's domain (messages without a topic: "marketing")."""
    name = str(topic.get("name") or "Marketing")
    label = _LABEL.sub("-", name.lower()).strip("-")[:40] or "topic"
    domain = envelope_address(from_address).rpartition("@")[2].lower() or "localhost"
    phrase = name.replace("\\", "").replace('"', "")[:60]
    return f'"{phrase}" <{label}.{topic.get("id") or 0}.{domain}>'


class SmtpSender:
    """One SMTP connection, reused for many messages."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ):
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0

    @classmethod
    def from_config(cls, config) -> SmtpSender:
        return cls(
            config["SMTP_HOST"],
            int(config.get("SMTP_PORT") or 25),
            username=config.get("SMTP_USERNAME"),
            password=config.get("SMTP_PASSWORD"),
            starttls=bool(config.get("SMTP_STARTTLS")),
        )

    def _connect(self) -> smtplib.SMTP:
        connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            _no_delay(connection)
            connection.ehlo()
            if self.starttls:
                connection.starttls(context=ssl.create_default_context())
                _no_delay(connection)
                connection.ehlo()
            if self.username:
                connection.login(self.username, self.password or "")
        except BaseException:
            _quietly_close(connection)
            raise
        return connection

    def _ready_connection(self) -> smtplib.SMTP:
        connection = self._connection
        if connection is not None and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                if connection.noop()[0] != 250:
                    raise smtplib.SMTPServerDisconnected("noop refused")
            except (smtplib.SMTPException, OSError):
                self.close()
                connection = None
        if connection is None:
            connection = self._connection = self._connect()
        return connection

    def send(self, message: bytes, from_address: str, to_address: str) -> dict:
        """Hand one message over; returns what to record. Raises SendFailed."""
        envelope_from = envelope_address(from_address)
        envelope_to = envelope_address(to_address)
        try:
            connection = self._ready_connection()
            _transaction(connection, envelope_from, envelope_to, message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (0, b""))
            self._reset()
            raise SendFailed(
                _smtp_error("recipient refused", code, text),
                response=_answer(code, text, recipient=True),
                permanent=code >= 500,
            ) from None
        except smtplib.SMTPResponseException as exc:
            self._reset()
            sender_side = isinstance(
                exc, smtplib.SMTPAuthenticationError | smtplib.SMTPSenderRefused
            )
            raise SendFailed(
                _smtp_error("server refused", exc.smtp_code, exc.smtp_error),
                response=_answer(exc.smtp_code, exc.smtp_error, recipient=not sender_side),
                permanent=exc.smtp_code >= 500
                and not isinstance(exc, smtplib.SMTPAuthenticationError),
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise SendFailed(f"SMTP connection failed: {type(exc).__name__}") from None
        self._last_used = time.monotonic()
        return {"smtp": "accepted"}

    def _reset(self) -> None:
        # After a refusal the connection is still good; RSET clears the
        # transaction so the next message starts clean.
        if self._connection is not None:
            try:
                self._connection.rset()
                self._last_used = time.monotonic()
            except (smtplib.SMTPException, OSError):
                self.close()

    def close(self) -> None:
        if self._connection is not None:
            _quietly_close(self._connection)
            self._connection = None


def _transaction(connection: smtplib.SMTP, sender: str, recipient: str, message: bytes) -> None:
    """MAIL, RCPT, DATA for one message and one recipient.

    ``SMTP.sendmail`` does the same but re-parses both addresses with the
    e-mail package (``quoteaddr``) on every message; ours are bare
    addresses already (``envelope_address``). DATA is ``SMTP.data`` written
    out (:func:`_dot_stuffed`). With a server that offers PIPELINING (RFC
    2920; Postfix, Exim, the big relays) MAIL, RCPT and DATA go in one
    write and their three answers are read together: two round trips a
    message instead of four. Refusals raise what ``sendmail`` raises; the
    caller resets the connection."""
    if connection.does_esmtp and connection.has_extn("pipelining"):
        if "\r" in sender + recipient or "\n" in sender + recipient:
            raise ValueError("an envelope address may not contain CR or LF")  # as putcmd
        connection.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        mail, rcpt, data = connection.getreply(), connection.getreply(), connection.getreply()
        if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # The server took DATA though the envelope failed: end the
            # empty message so the connection stays in step (RFC 2920 3.1).
            connection.send(b".\r\n")
            connection.getreply()
    else:
        mail = connection.docmd("mail", f"FROM:<{sender}>")
        rcpt = connection.docmd("rcpt", f"TO:<{recipient}>") if mail[0] == 250 else None
        data = connection.docmd("data") if rcpt and rcpt[0] in (250, 251) else None
    if mail[0] != 250:
        raise smtplib.SMTPSenderRefused(*mail, sender)
    if rcpt[0] not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if data[0] != 354:
        raise smtplib.SMTPDataError(*data)
    connection.send(_dot_stuffed(message))
    code, reply = connection.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def _dot_stuffed(message: bytes) -> bytes:
    """The DATA payload as ``SMTP.data`` sends a bytes message (RFC 5321
    4.5.2: a line's leading dot doubled, then CRLF . CRLF), with
    ``bytes.replace`` where smtplib runs a multiline regex."""
    stuffed = message.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def envelope_address(value: str) -> str:
    if _BARE_ADDRESS.fullmatch(value):
        return value
    return parseaddr(value)[1] or value


def _no_delay(connection: smtplib.SMTP) -> None:
    # SMTP is chatty (MAIL, RCPT, DATA, body): without TCP_NODELAY, Nagle
    # and delayed ACKs add tens of milliseconds to every message.
    with contextlib.suppress(OSError, AttributeError):
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _smtp_error(what: str, code: int, text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{what}: {code} {str(text)[:300]}"


def _answer(code: int, text, *, recipient: bool) -> dict:
    """The server's answer as recorded: ``recipient`` says whether it is
    about the recipient (RCPT, DATA), so it may count as a bounce."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return {"smtp_code": code, "smtp_answer": " ".join(str(text).split())[:500], "rcpt": recipient}


def _quietly_close(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        with contextlib.suppress(OSError):
            connection.close()

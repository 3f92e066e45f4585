"""A fast MIME writer for our one message shape.

``email.message.EmailMessage`` spends milliseconds per message in its header
registry; the delivery benchmark sends thousands a second. Every outgoing
e-mail has the same shape -- a few headers and a ``multipart/alternative``
with a text and an HTML part -- so it is written directly: bodies as UTF-8
quoted-printable (``binascii``, in C), non-ASCII header text as RFC 2047
encoded words (``email.header``), CR/LF never allowed inside a header.
"""

from __future__ import annotations

import binascii
import re
import secrets
from email.header import Header
from email.utils import formataddr, parseaddr

CRLF = "\r\n"


def _header_text(value: str) -> str:
    value = " ".join(str(value).split())  # no CR/LF: no header injection
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=998).encode().replace("\n", CRLF)


_BARE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


def _address(value: str) -> str:
    if _BARE_ADDRESS.fullmatch(value):
        return value  # the common case, without the slow parser
    name, address = parseaddr(" ".join(str(value).split()))
    if not address:
        raise ValueError("an e-mail address is required")
    return formataddr((name, address), charset="utf-8") if name else address


def _qp(text: str) -> str:
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.decode("ascii").replace("\n", CRLF)


def build_message(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """``headers`` are (name, value) pairs; From/To/Cc values are addresses."""
    boundary = "=_" + secrets.token_hex(16)
    lines = []
    for name, value in headers:
        shown = _address(value) if name in ("From", "To", "Reply-To") else _header_text(value)
        lines.append(f"{name}: {shown}")
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        _qp(text),
        f"--{boundary}",
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        _qp(html),
        f"--{boundary}--",
        "",
    ]
    return CRLF.join(lines).encode("ascii")

"""Outgoing webhooks: the SSRF guard and the signed request.

:func:`check_url` refuses what a workflow author must not reach from our
network: other schemes, and hosts that resolve to loopback, private,
link-local (cloud metadata), shared, multicast, reserved or unspecified
addresses -- however the address is spelt (``2130706433``, ``0177.0.0.1``,
``0x7f.0.0.1``, ``::ffff:127.0.0.1``: the resolver normalises them and every
resolved address is checked). ``WEBHOOK_ALLOW_PRIVATE`` lifts the address
check (local development, tests), never the scheme check.

A save (API, builder, import) checks without DNS (:func:`check_url_syntax`:
the scheme, the host's form, and an address written in the URL) and only
warns about a name that does not resolve or resolves to a private address
(:func:`url_warnings`): DNS that is not live yet must not stop a save.

At send time the URL is checked again and the request goes to the address
that was checked (the IP is pinned, the ``Host`` header and TLS SNI keep
the name, and the certificate is verified for the name), so a DNS answer
that changes between check and connect (DNS rebinding) cannot redirect it:
the name is resolved once, by the check, and the connection is made to that
IP. Connections are kept alive per host name (:class:`Clients`), never per
IP alone, so a request to one name never rides a TLS session verified for
another name on the same address. ``WEBHOOK_CA_BUNDLE`` names a CA file to
trust instead of the public ones (a private receiver, tests). Redirects are
never followed; a 3xx is a failure like any other non-2xx answer.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

import httpx

from app.automation.delivery.errors import SendFailed
from app.automation.delivery.signing import sign_headers

MAX_RESPONSE_BYTES = 500
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")


class UnsafeURL(ValueError):
    """A webhook URL we refuse to call; the message is safe to show."""


class UnresolvableHost(UnsafeURL):
    """The host has no address (here, now): refused at send, tolerated by an
    import whose document may come from a machine with other DNS."""


@dataclass(frozen=True)
class Target:
    """Where to connect (``url`` with the IP) and what to call it."""

    url: str
    host_header: str
    hostname: str
    address: str


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is not None:
            return _public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def _parse(url: str) -> tuple[object, str, str, int]:
    """(parts, scheme, hostname, port) of a webhook URL; raises UnsafeURL
    for what no DNS answer could make right."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("URL is empty")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeURL("URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("only http:// and https:// URLs are allowed")
    hostname = parts.hostname
    if not hostname:
        raise UnsafeURL("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("credentials in the URL are not allowed; send them as a header")
    return parts, scheme, hostname, port or (443 if scheme == "https" else 80)


def resolve(url: str, allow_private: bool) -> Target:
    """Check ``url`` and pick the address to connect to; raises UnsafeURL.
    The send-time check: the name is resolved here, once."""
    parts, scheme, hostname, port = _parse(url)
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise UnresolvableHost(f"host {hostname!r} does not resolve") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(f"host {hostname!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise UnsafeURL(
                    f"host {hostname!r} resolves to a non-public address ({address}); "
                    "webhooks may only call public addresses"
                )
    chosen = addresses[0]
    shown = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    default_port = 443 if scheme == "https" else 80
    netloc = shown if port == default_port else f"{shown}:{port}"
    host_name = f"[{hostname}]" if ":" in hostname else hostname
    host_header = host_name if port == default_port else f"{host_name}:{port}"
    pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(pinned, host_header, hostname, str(chosen))


def check_url(url: str, allow_private: bool = False) -> None:
    """Raise :class:`UnsafeURL` for a webhook URL we would refuse to call
    now, resolving its host (what the send does; the save checks
    :func:`check_url_syntax` and warns with :func:`url_warnings`)."""
    resolve(url, allow_private)


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _literal_address(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host that is an IP literal stands for, however it is
    spelt (``2130706433``, ``0x7f.0.0.1``, ``::ffff:127.0.0.1``): parsed by
    the same resolver as at send time, told not to ask DNS
    (``AI_NUMERICHOST``). None for a name."""
    try:
        infos = socket.getaddrinfo(
            hostname.removesuffix("."), None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(infos[0][4][0].split("%", 1)[0]) if infos else None


def check_url_syntax(url: str, allow_private: bool = False) -> None:
    """The save-time check, without DNS: the scheme, no credentials, a
    well-formed host name, and a host given as an address (or ``localhost``)
    must be public unless ``allow_private``. Raises :class:`UnsafeURL`. A
    name is not resolved here: a receiver whose DNS is not live yet, or a
    DNS hiccup, must not stop a save (:func:`url_warnings` says so; the
    send resolves and refuses)."""
    _parts, _scheme, hostname, _port = _parse(url)
    address = _literal_address(hostname)
    if address is None:
        try:
            ascii_name = hostname.removesuffix(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeURL(f"host {hostname!r} is not a valid host name") from None
        labels = ascii_name.split(".")
        if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            raise UnsafeURL(f"host {hostname!r} is not a valid host name")
        if labels[-1] == "localhost" and not allow_private:
            raise UnsafeURL(
                f"host {hostname!r} is this machine; webhooks may only call public addresses"
            )
        return
    if not allow_private and not _public(address):
        raise UnsafeURL(
            f"host {hostname!r} is a non-public address ({address}); "
            "webhooks may only call public addresses"
        )


def url_warnings(url: str, allow_private: bool = False) -> list[str]:
    """What the save should say about a URL that passed
    :func:`check_url_syntax` but would not be called now: its host does not
    resolve, or resolves to a non-public address. Saved all the same; the
    send checks again."""
    try:
        resolve(url, allow_private)
    except UnresolvableHost as exc:
        return [f"{exc} now; saved, but the step fails when it runs unless it resolves by then"]
    except UnsafeURL as exc:
        return [f"{exc}; saved, but the step is refused when it runs while it resolves there"]
    return []


@lru_cache(maxsize=4)
def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Certificates verified, for the host name (``check_hostname``): the
    public CAs (certifi, as httpx uses), or only ``ca_bundle``'s."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    import certifi  # httpx's own CA list

    return ssl.create_default_context(cafile=certifi.where())


class Clients:
    """The webhook HTTP clients of one dispatcher run: one per host name.

    The request goes to the pinned IP (``Target.url``), so httpx pools its
    connections by IP; one client for every name would let a request to
    ``b.example`` reuse a keep-alive connection whose certificate was
    verified for ``a.example`` when both resolve to one address (a CDN).
    A client per name keeps every TLS session to the name it was verified
    for. At most ``MAX_CLIENTS`` stay open (the oldest is closed)."""

    MAX_CLIENTS = 32

    def __init__(self, ca_bundle: str | None = None):
        self.ca_bundle = ca_bundle or None
        self._clients: dict[str, httpx.Client] = {}

    def for_host(self, hostname: str) -> httpx.Client:
        client = self._clients.get(hostname)
        if client is None:
            if len(self._clients) >= self.MAX_CLIENTS:
                oldest = next(iter(self._clients))
                self._clients.pop(oldest).close()
            # No environment proxies: a proxy would connect by name and
            # undo the pinning.
            client = self._clients[hostname] = httpx.Client(
                trust_env=False, follow_redirects=False, verify=_tls_context(self.ca_bundle)
            )
        return client

    def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()


def encode_body(body) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def send_webhook(
    clients: Clients, row, secret: str | list[str], *, allow_private: bool, user_agent: str
) -> dict:
    """Send one outbox row's webhook; returns what to record as its response.
    Raises :class:`SendFailed` (the error text never carries the secret
    or the request headers)."""
    payload = row.payload or {}
    method = (payload.get("method") or "POST").upper()
    try:
        target = resolve(row.to_address, allow_private)
    except UnsafeURL as exc:
        raise SendFailed(str(exc), permanent=True) from None
    body = b"" if method == "GET" else encode_body(payload.get("body"))
    headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
    headers.update(sign_headers(secret, row.message_id, body))
    headers["Idempotency-Key"] = row.message_id
    headers["Host"] = target.host_header
    headers.setdefault("User-Agent", user_agent)
    if body:
        headers["Content-Type"] = "application/json"
    extensions = {"sni_hostname": target.hostname} if target.url.startswith("https") else {}
    timeout = float(payload.get("timeout_seconds") or 10)
    client = clients.for_host(target.hostname)
    try:
        with client.stream(
            method,
            target.url,
            content=body or None,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
            extensions=extensions,
        ) as response:
            # Keep only the start of the answer: a receiver cannot make us
            # hold a huge body.
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= MAX_RESPONSE_BYTES:
                    break
    except httpx.TimeoutException:
        raise SendFailed(f"timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise SendFailed(f"request failed: {type(exc).__name__}") from None
    result = {
        "status_code": response.status_code,
        "body": received[:MAX_RESPONSE_BYTES].decode("utf-8", "replace"),
    }
    if not 200 <= response.status_code < 300:
        raise SendFailed(f"receiver answered HTTP {response.status_code}", result)
    return result

"""A simulated resolver for names under ``.test``: ``socket.getaddrinfo``
answers them from a table (DNS cannot be run for real in tests); every
other name and every address goes to the real resolver."""

from __future__ import annotations

import socket

_real_getaddrinfo = socket.getaddrinfo


class FakeDns:
    """Each name's list of answers is used in turn (the last repeats); every
    lookup that would ask DNS is recorded. ``AI_NUMERICHOST`` asks no DNS:
    a name is then "not numeric", as with the real resolver."""

    def __init__(self, monkeypatch):
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        monkeypatch.setattr(socket, "getaddrinfo", self._getaddrinfo)

    def _getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.rstrip(".").endswith(".test"):
            return _real_getaddrinfo(host, port, family, type, proto, flags)
        if flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        self.lookups.append(name)
        queue = self.answers.get(name)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

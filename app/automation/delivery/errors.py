"""The one failure type the transports raise to the dispatcher."""

from __future__ import annotations


class SendFailed(Exception):
    """A send that did not succeed. ``permanent`` failures (a refused
    address, an unsafe URL) are not retried. The message is recorded on the
    outbox row: it never carries secrets, credentials or request headers."""

    def __init__(self, message: str, response: dict | None = None, permanent: bool = False):
        super().__init__(message)
        self.response = response or {}
        self.permanent = permanent

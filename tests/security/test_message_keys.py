"""Message keys (``Message-ID``, ``webhook-id``, ``Idempotency-Key``) are
keyed with SECRET_KEY: the same step on two installations with the same
ids sends different keys, so a receiver that drops repeats never drops a
real message of another install, and nobody can guess the next key from
the ids (docs/SENDING.md, "Message keys")."""

from __future__ import annotations

import hashlib

from flask import Flask

from app.automation.delivery.outbox import message_key


def _key_under(secret: str, *parts) -> str:
    install = Flask(f"install-{secret}")
    install.config["SECRET_KEY"] = secret
    with install.app_context():
        return message_key(*parts)


def test_two_installations_give_the_same_step_different_keys():
    first = _key_under("install one", 1, 42, "send", 1)
    second = _key_under("install two", 1, 42, "send", 1)
    assert first != second
    assert len(first) == len(second) == 32


def test_the_same_secret_gives_the_same_key_every_time():
    assert _key_under("install one", 1, 42, "send", 1) == _key_under(
        "install one", 1, 42, "send", 1
    )
    assert _key_under("install one", 1, 42, "send", 1) != _key_under(
        "install one", 1, 42, "send", 2
    )


def test_the_key_is_not_the_plain_hash_of_the_ids():
    plain = hashlib.sha256(b"1:42:send:1").hexdigest()[:32]
    assert _key_under("install one", 1, 42, "send", 1) != plain
    assert _key_under("", 1, 42, "send", 1) != plain

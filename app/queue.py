"""Redis connection for RQ (the engine's job plumbing builds on this)."""

from __future__ import annotations

from functools import lru_cache

from flask import current_app


@lru_cache(maxsize=4)
def _connection_for(url: str):
    from redis import Redis

    return Redis.from_url(url)


def redis_connection():
    """The app's Redis connection, or None in the embedded (inline) mode."""
    url = current_app.config.get("REDIS_URL")
    return _connection_for(url) if url else None

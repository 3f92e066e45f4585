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


def kick_engine() -> None:
    """Tell the workers that executions are ready.

    The engine issue fills this in (an RQ job, or the in-process runner);
    the sweeper finds ready executions either way, so a lost kick only
    delays work."""

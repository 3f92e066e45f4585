"""The global rate limit: slots shared by every worker process and host
(docs/SENDING.md "Rate limits").

Each key (a firm's ``max_per_second``; a firm's limit for one recipient
domain) is a virtual clock, the moment from which its next message may go
(GCRA). Taking a slot is one conditional write: the clock advances by
``1 / limit`` only when the slot it gives is at most :data:`LOOKAHEAD`
ahead, so at most ``limit`` slots are ever handed out per second, spaced
``1 / limit`` apart, whatever the number of workers. The worker waits for
its slot (a fraction of a second) and then hands the message over; a
message whose slot would be further ahead is not given one and waits its
turn in the outbox (a defer, nothing dropped).

With Redis the clocks live there (one Lua script takes every key of a
message at once, read with the Redis server's clock, so hosts' clocks need
not agree); on the embedded default in ``send_rate_slots`` (one
conditional upsert per key).
"""

from __future__ import annotations

import time

from flask import current_app
from sqlalchemy import Connection, text

from app.queue import redis_connection

LOOKAHEAD = 1.0  # seconds: the furthest slot a worker waits for

# A Redis clock unused for 120 s is forgotten. KEYS: the clocks; ARGV: lookahead, then one interval per key. Returns
# {1, wait} (slots taken on every key, wait seconds before sending) or
# {0, wait} (none taken: the soonest moment, in seconds from now).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lookahead = tonumber(ARGV[1])
local slot = now
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat > slot then slot = tat end
end
if slot - now > lookahead then
  return {0, tostring(slot - now - lookahead)}
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tostring(slot + tonumber(ARGV[i + 1])), 'EX', 120)
end
return {1, tostring(slot - now)}
"""

_scripts: dict[int, object] = {}


def _redis_take(conn, keys: list[tuple[str, float]]) -> tuple[bool, float]:
    script = _scripts.get(id(conn))
    if script is None:
        script = _scripts[id(conn)] = conn.register_script(_SCRIPT)
    prefix = current_app.config.get("QUEUE_PREFIX") or "automation"
    names = [f"{prefix}:rate:{key}" for key, _ in keys]
    taken, wait = script(keys=names, args=[LOOKAHEAD, *[interval for _, interval in keys]])
    return bool(int(taken)), max(0.0, float(wait))


_UPSERT = text(
    """
    INSERT INTO send_rate_slots (key, tat) VALUES (:key, :now + :interval)
    ON CONFLICT (key) DO UPDATE
      SET tat = (CASE WHEN send_rate_slots.tat > :now THEN send_rate_slots.tat ELSE :now END)
                + :interval
      WHERE send_rate_slots.tat - :now <= :lookahead
    RETURNING tat - :interval
    """
)
_READ = text("SELECT tat FROM send_rate_slots WHERE key = :key")


def _db_take(conn: Connection, keys: list[tuple[str, float]]) -> tuple[bool, float]:
    slot = 0.0
    for key, interval in keys:
        now = time.time()
        row = conn.execute(
            _UPSERT, {"key": key, "now": now, "interval": interval, "lookahead": LOOKAHEAD}
        ).first()
        if conn.dialect.name != "postgresql":
            conn.commit()
        if row is None:
            tat = conn.execute(_READ, {"key": key}).scalar_one()
            return False, max(0.0, tat - now - LOOKAHEAD)
        slot = max(slot, float(row[0]) - now)
    return True, max(0.0, slot)


def take(conn: Connection, keys: list[tuple[str, float]]) -> tuple[bool, float]:
    """A slot on every key (``(name, 1 / limit)``): (True, seconds to wait
    before sending) or (False, seconds until one may be had)."""
    redis = redis_connection()
    if redis is not None:
        return _redis_take(redis, keys)
    return _db_take(conn, keys)


def keys_for(firm_id: int, address: str, settings: dict) -> list[tuple[str, float]]:
    keys = []
    if settings.get("max_per_second"):
        keys.append((f"firm:{firm_id}", 1.0 / settings["max_per_second"]))
    domain = address.rsplit("@", 1)[-1].lower() if "@" in address else ""
    limit = (settings.get("domain_limits") or {}).get(domain)
    if limit:
        keys.append((f"firm:{firm_id}:domain:{domain}", 1.0 / limit))
    return keys

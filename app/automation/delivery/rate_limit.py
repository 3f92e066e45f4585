"""The global rate limit: slots shared by every worker process and host
(docs/SENDING.md "Rate limits").

Each key (a firm's ``max_per_second``; a firm's limit for one recipient
domain) is a virtual clock, the moment from which its next message may go
(GCRA). A dispatcher reserves the slots of a whole batch of messages at
once (:func:`reserve`, in the order it will hand them over): message by
message, its slot is the latest clock among its keys (and no earlier than
the slot before it, since one worker sends one at a time), and each of its
keys advances by ``1 / limit``; the first message whose slot would be more
than :data:`LOOKAHEAD` ahead ends the reservation, and it and the rest are
told when to try again. So at most ``limit`` slots are ever handed out per
second, spaced ``1 / limit`` apart, whatever the number of workers. The
worker waits for each message's slot and then hands it over; a message not
given one waits its turn in the outbox (a defer, nothing dropped).

With Redis the clocks live there (one Lua script per batch, read with the
Redis server's clock, so hosts' clocks need not agree); on the embedded
default in ``send_rate_slots`` (read, planned and written back under the
database's write lock, or an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Connection, bindparam, text

from app.queue import redis_connection

LOOKAHEAD = 1.0  # seconds: the furthest slot a worker waits for
LOCK_SPACE = 0x7274  # "rt": the advisory lock of send_rate_slots (embedded default)

Keys = list[tuple[str, float]]  # (name, 1 / limit)

# A Redis clock unused for 120 s is forgotten. KEYS: every clock of the
# batch. ARGV: lookahead, the number of clocks, one interval per clock, then
# per message its number of clocks and their positions in KEYS. Returns
# {retry, {slot, ...}}: each granted message's slot in seconds from now, in
# order, and for the rest the seconds until the first of them may have one.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lookahead = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local tat, interval = {}, {}
for i = 1, count do
  tat[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  interval[i] = tonumber(ARGV[2 + i])
end
local pos = 3 + count
local floor = now
local slots = {}
local retry = '0'
while pos <= #ARGV do
  local n = tonumber(ARGV[pos])
  local slot = floor
  for j = 1, n do
    local k = tonumber(ARGV[pos + j])
    if tat[k] > slot then slot = tat[k] end
  end
  if slot - now > lookahead then
    retry = string.format('%.6f', slot - now - lookahead)
    break
  end
  for j = 1, n do
    local k = tonumber(ARGV[pos + j])
    tat[k] = slot + interval[k]
  end
  slots[#slots + 1] = string.format('%.6f', slot - now)
  floor = slot
  pos = pos + n + 1
end
for i = 1, count do
  if tat[i] > now then
    redis.call('SET', KEYS[i], string.format('%.6f', tat[i]), 'EX', 120)
  end
end
return {retry, slots}
"""

_scripts: dict[int, object] = {}
# Reservations this process made (one per batch, whatever its size): a
# figure for the tests and benchmarks.
stats = {"reservations": 0}


@dataclass
class Reservation:
    """Slots for the first ``len(slots)`` messages asked for, in order, as
    moments of ``time.monotonic()``; the rest may ask again ``retry`` seconds
    from the reservation."""

    slots: list[float]
    retry: float


def plan(
    tats: dict[str, float], messages: list[Keys], now: float, lookahead: float = LOOKAHEAD
) -> tuple[list[float], float]:
    """The script's arithmetic (the embedded default's store runs it here):
    slots in seconds from ``now`` for a prefix of ``messages`` and the retry
    delay for the rest; ``tats`` is updated in place."""
    floor = now
    slots: list[float] = []
    for keys in messages:
        slot = max([floor, *(tats.get(name, 0.0) for name, _ in keys)])
        if slot - now > lookahead:
            return slots, slot - now - lookahead
        for name, interval in keys:
            tats[name] = slot + interval
        slots.append(slot - now)
        floor = slot
    return slots, 0.0


def _names(keys: Keys) -> list[str]:
    prefix = current_app.config.get("QUEUE_PREFIX") or "automation"
    return [f"{prefix}:rate:{name}" for name, _ in keys]


def _redis_reserve(conn, messages: list[Keys]) -> tuple[list[float], float]:
    script = _scripts.get(id(conn))
    if script is None:
        script = _scripts[id(conn)] = conn.register_script(_SCRIPT)
    index: dict[str, int] = {}
    intervals: list[float] = []
    layout: list = []
    for keys in messages:
        layout.append(len(keys))
        for name, interval in keys:
            if name not in index:
                index[name] = len(index) + 1
                intervals.append(interval)
            layout.append(index[name])
    names = _names([(name, 0.0) for name in index])
    retry, slots = script(keys=names, args=[LOOKAHEAD, len(names), *intervals, *layout])
    return [float(s) for s in slots], max(0.0, float(retry))


_ENSURE = text(
    "INSERT INTO send_rate_slots (key, tat) VALUES (:key, 0) ON CONFLICT (key) DO NOTHING"
)
_READ = text("SELECT key, tat FROM send_rate_slots WHERE key IN :keys").bindparams(
    bindparam("keys", expanding=True)
)
_WRITE = text("UPDATE send_rate_slots SET tat = :tat WHERE key = :key")


def _db_reserve(conn: Connection, messages: list[Keys]) -> tuple[list[float], float]:
    names = sorted({name for keys in messages for name, _ in keys})
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # the dispatcher's connection autocommits: a session lock
        conn.execute(text("SELECT pg_advisory_lock(:space, 0)"), {"space": LOCK_SPACE})
    try:
        # On SQLite the first write takes the database's write lock, held
        # until the commit: the read, the plan and the write are one step.
        conn.execute(_ENSURE, [{"key": name} for name in names])
        rows = conn.execute(_READ, {"keys": names})
        tats = {key: float(tat) for key, tat in rows}
        before = dict(tats)
        slots, retry = plan(tats, messages, time.time())
        changed = [{"key": k, "tat": v} for k, v in tats.items() if v != before.get(k)]
        if changed:
            conn.execute(_WRITE, changed)
        if not postgres:
            conn.commit()
    finally:
        if postgres:
            conn.execute(text("SELECT pg_advisory_unlock(:space, 0)"), {"space": LOCK_SPACE})
    return slots, retry


def reserve(conn: Connection, messages: list[Keys]) -> Reservation:
    """Slots for ``messages`` (each its keys, in the order they will be
    handed over) in one call to the store."""
    stats["reservations"] += 1
    at = time.monotonic()
    redis = redis_connection()
    if redis is not None:
        slots, retry = _redis_reserve(redis, messages)
    else:
        slots, retry = _db_reserve(conn, messages)
    return Reservation([at + slot for slot in slots], retry)


def take(conn: Connection, keys: Keys) -> tuple[bool, float]:
    """A slot on every key for one message: (True, seconds to wait before
    sending) or (False, seconds until one may be had)."""
    reservation = reserve(conn, [keys])
    if reservation.slots:
        return True, max(0.0, reservation.slots[0] - time.monotonic())
    return False, reservation.retry


def keys_for(firm_id: int, address: str, settings: dict) -> list[tuple[str, float]]:
    keys = []
    if settings.get("max_per_second"):
        keys.append((f"firm:{firm_id}", 1.0 / settings["max_per_second"]))
    domain = address.rsplit("@", 1)[-1].lower() if "@" in address else ""
    limit = (settings.get("domain_limits") or {}).get(domain)
    if limit:
        keys.append((f"firm:{firm_id}:domain:{domain}", 1.0 / limit))
    return keys

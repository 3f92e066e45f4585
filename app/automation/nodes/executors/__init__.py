"""The node executors: one function per node type, in one registry.

The node types themselves (config schema, ports) live in
``app.automation.nodes``; this package adds how each one runs, keyed by the
same ``node_type`` string. ``EXECUTORS[node_type](step) -> Outcome``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

EXECUTORS: dict[str, Callable] = {}


def executor(node_type: str) -> Callable[[Callable], Callable]:
    def register(func: Callable) -> Callable:
        if node_type in EXECUTORS:
            raise ValueError(f"executor for {node_type!r} registered twice")
        EXECUTORS[node_type] = func
        return func

    return register


def executor_for(node_type: str) -> Callable | None:
    _load()
    return EXECUTORS.get(node_type)


_loaded = False
_lock = threading.Lock()


def _load() -> None:
    """Import the executor modules once (threads of one worker may race)."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            from app.automation.nodes.executors import control, crm, messages  # noqa: F401

            _loaded = True

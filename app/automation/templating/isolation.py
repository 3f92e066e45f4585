"""Renders for web requests in a forked child with a memory and a CPU limit.

The sandbox's bounds (:mod:`.limits`) keep a template's values small as
they are built. This is the backstop for a bound they miss: a preview, a
test send, a confirmation e-mail or a save-time trial render runs in a
helper process forked from the web process (``os.fork``: the app and its
compiled templates are there; the request's already-loaded, plain-data
context goes over a pipe, pickled) with

- ``RLIMIT_AS`` at the web process's address space plus
  ``TEMPLATE_RENDER_MEMORY_MB`` (512): a big allocation fails in the
  helper with ``MemoryError`` instead of growing the web process;
- ``RLIMIT_CPU`` of :data:`CPU_SECONDS` more than it has used, set again
  for every request, and a wall-clock kill after :data:`WALL_SECONDS`: C
  code that never returns to the interpreter (where the watchdog cannot
  interrupt it) is killed. The clock starts once the helper said it is
  ready: a fork on a loaded machine is not the template's time.

A helper serves one request at a time and is kept for the next one (a
fork of the web process costs tens of milliseconds on a virtual machine,
a round trip to a waiting helper well under one; benchmarks/
template_isolation.py). One that was killed, died or grew is replaced by
a fresh fork; its request's answer is a :class:`ChildFailed`, which
:func:`.render.render_isolated` turns into a ``TemplateLimitError``
("template used too much memory or time to render").

The helper never touches the database: its context is plain data, and the
connections it inherited are the web process's sockets. ``gc.freeze()``
right after the fork puts every inherited object out of the collector's
reach, so no finaliser of an ORM object or a pooled connection runs there;
it leaves by ``os._exit``, so no atexit handler does either.

The engine's and the dispatcher's renders do not come here (no fork or
round trip per message): the worker process is limited as a whole instead
(``worker.py``, ``WORKER_MEMORY_LIMIT_MB``) and a ``MemoryError`` inside a
render fails the step (:func:`.render._render`). See docs/SENDING.md
"Template limits".

Where there is no ``os.fork`` or no ``/proc`` (not Linux: not a platform
this app runs on) :func:`isolated` calls the function in this process,
bounded by the sandbox's limits alone; :data:`CAN_FORK` says which.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import resource
import select
import signal
import struct
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import jinja2.lexer
from flask import current_app, has_app_context

from app.automation.templating import limits
from app.automation.templating.limits import DEFAULT_TIMEOUT

T = TypeVar("T")

CAN_FORK = hasattr(os, "fork") and os.path.exists("/proc/self/statm")
DEFAULT_MEMORY_MB = 512
CPU_SECONDS = 2
WALL_SECONDS = DEFAULT_TIMEOUT + 1.0
MAX_IDLE = 4  # helpers kept waiting per web process
MAX_REQUESTS = 1000  # a helper is replaced after this many
MAX_GROWTH = 64 << 20  # ... or once its peak resident size grew this much
STARTUP_SECONDS = 10.0  # for a fresh helper to say it is ready
READY = b"R"
TOO_MUCH = "template used too much memory or time to render"
_HEADER = struct.Struct("!Q")


class ChildFailed(Exception):
    """The helper was killed, died or answered nothing."""


def memory_mb() -> int:
    if has_app_context():
        value = current_app.config.get("TEMPLATE_RENDER_MEMORY_MB")
        if value is not None:
            return int(value)
    return DEFAULT_MEMORY_MB


def _statm(field: int) -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


class _Helper:
    """One forked helper and the two pipes to it."""

    def __init__(self, extra_bytes: int) -> None:
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        limit = _statm(0) + extra_bytes if extra_bytes > 0 else resource.RLIM_INFINITY
        with warnings.catch_warnings():
            # Python 3.12 warns on forking a process with threads: the
            # helper takes no lock another thread may hold (docstring).
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the helper (its answers are asserted)
            _close_inherited(keep={0, 1, 2, to_child, from_child})
            _serve(to_child, from_child, limit)
        os.close(to_child)
        os.close(from_child)
        self.pid, self.send, self.receive = pid, from_parent, to_parent
        self.owner = os.getpid()
        self.served = 0
        # Ready before the request's wall clock starts: a fork on a loaded
        # machine may take a while, and is not the template's time.
        ready = select.select([self.receive], [], [], STARTUP_SECONDS)[0]
        if not ready or os.read(self.receive, 1) != READY:
            self.close()
            raise ChildFailed(TOO_MUCH)

    def call(self, func: Callable, args: tuple) -> tuple[bool, Any]:
        try:
            _write_all(self.send, pickle.dumps((func, args), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            raise ChildFailed(TOO_MUCH) from None
        deadline = time.monotonic() + WALL_SECONDS
        buffer = b""
        needed = _HEADER.size
        length = None
        while len(buffer) < needed:
            left = deadline - time.monotonic()
            ready = select.select([self.receive], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                raise ChildFailed(TOO_MUCH)  # the caller kills it
            chunk = os.read(self.receive, 1 << 20)
            if not chunk:
                raise ChildFailed(TOO_MUCH)  # died: SIGXCPU, or out of memory
            buffer += chunk
            if length is None and len(buffer) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buffer)
                needed = _HEADER.size + length
        self.served += 1
        ok, value, keep = pickle.loads(buffer[_HEADER.size :])
        if not keep:
            self.served = MAX_REQUESTS  # it leaves after this answer
        return ok, value

    def close(self) -> None:
        for fd in (self.send, self.receive):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.owner == os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)


def _close_inherited(keep: set[int]) -> None:
    """Close every descriptor the fork copied but the helper's pipes and
    standard streams. A copy held here keeps the other end from seeing
    EOF: a subprocess's pipe (a browser driver waiting for its stdin to
    close), a listening socket after the web process closed it, a pipe of
    another helper. Closing a copy sends nothing on a socket: the web
    process's connections stay as they are."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _serve(requests: int, answers: int, limit: int) -> None:
    """The helper's loop: a request in, its answer out, until EOF."""
    code = 0
    try:
        # Nothing inherited is ever collected here (no ORM or connection
        # finaliser runs); what the renders build is, as usual.
        gc.freeze()
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if limit != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or limit < hard):
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        # The web process's watchdog thread did not come along, and its
        # lock may have been held at the fork: a fresh one.
        limits.watchdog = limits.Watchdog()
        # Jinja's lexer cache has a lock another thread may have held.
        jinja2.lexer._lexer_cache._wlock = threading.Lock()
        os.write(answers, READY)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        while True:
            try:
                (length,) = _HEADER.unpack(_read_exactly(requests, _HEADER.size))
                func, args = pickle.loads(_read_exactly(requests, length))
            except EOFError:
                break  # the web process closed the pipe, or is gone
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu = int(used.ru_utime + used.ru_stime) + CPU_SECONDS
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
            try:
                ok, value = True, func(*args)
            except Exception as exc:  # noqa: BLE001 - handed to the web process
                ok, value = False, exc
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak
            keep = grown < MAX_GROWTH
            try:
                data = pickle.dumps((ok, value, keep), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - an unpicklable answer
                data = pickle.dumps((False, RuntimeError(repr(value)), keep))
            _write_all(answers, data)
            if not keep:
                break
    except BaseException:  # noqa: BLE001 - MemoryError outside a render, ...
        code = 1
    finally:
        os._exit(code)


_lock = threading.Lock()
_idle: list[_Helper] = []


def _forget_after_fork() -> None:
    # A forked process (a gunicorn worker, a helper) does not share the
    # parent's helpers: their pipes are closed here, their processes left
    # to the parent.
    for helper in _idle:
        helper.owner = -1
        helper.close()
    _idle.clear()


if CAN_FORK:
    os.register_at_fork(after_in_child=_forget_after_fork)


def stop_helpers() -> None:
    """End the waiting helpers; the next request forks fresh ones (which see
    this process's sandbox as it is now)."""
    with _lock:
        helpers = list(_idle)
        _idle.clear()
    for helper in helpers:
        helper.close()


def isolated(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a helper process under the limits above; its
    return value (or the exception it raised) comes back. ``func`` and
    ``args`` are pickled: a module-level function and plain data, and
    ``func`` must not touch the database."""
    if not CAN_FORK:
        return func(*args)
    with _lock:
        helper = _idle.pop() if _idle else None
    if helper is None:
        helper = _Helper(memory_mb() << 20)
    try:
        ok, value = helper.call(func, args)
    except BaseException:
        helper.close()
        raise
    if helper.served >= MAX_REQUESTS:
        helper.close()
    else:
        with _lock:
            spare = len(_idle) >= MAX_IDLE
            if not spare:
                _idle.append(helper)
        if spare:
            helper.close()
    if ok:
        return value
    raise value

"""Shared by the event-fault tests: the app served over real HTTP, and a
way to fire one request from many threads at the same instant."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
from werkzeug.serving import make_server


@contextmanager
def served(app) -> Iterator[str]:
    """The test app on 127.0.0.1 and a free port (threaded werkzeug, a
    thread per request, like a real multi-threaded web server); yields
    the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="fault-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def at_once(count: int, call: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """Run ``call`` from ``count`` threads released together by a barrier,
    each with its own connection; returns the responses."""
    barrier = threading.Barrier(count)

    def one(_):
        with httpx.Client(timeout=60, trust_env=False) as client:
            barrier.wait()
            return call(client)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))

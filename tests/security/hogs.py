"""Test-only template filters that allocate big, or spin, in C code the
sandbox's weight checks never see: a bound the sandbox missed, for the
backstop's tests (tests/security/test_template_backstop.py,
tests/faults/test_template_memory.py). Only a test installs them, into
this process's sandbox environments; nothing a marketer writes can."""

from __future__ import annotations

from app.automation.templating import isolation, render
from app.automation.templating.sandbox import html_env, text_env


def hog_lazy(value):
    """10 GB in one C allocation (calloc: mapped, not touched)."""
    return len(bytes(10**10))


def hog_touch(value):
    """1 GB written in 64 MB pieces: resident, not just mapped."""
    pieces = [bytearray(64 << 20) for _ in range(16)]
    return sum(map(len, pieces))


def hog_spin(value):
    """Seconds of CPU in one C call the watchdog cannot interrupt."""
    return sum(range(5 * 10**8))


HOGS = {"hog_lazy": hog_lazy, "hog_touch": hog_touch, "hog_spin": hog_spin}


def _reset() -> None:
    # Templates compiled, and helpers forked, before the change would not
    # see it (templating/isolation.py).
    render._compile.cache_clear()
    isolation.stop_helpers()


def install() -> None:
    for env in (html_env, text_env):
        env.filters.update(HOGS)
    _reset()


def uninstall() -> None:
    for env in (html_env, text_env):
        for name in HOGS:
            env.filters.pop(name, None)
    _reset()

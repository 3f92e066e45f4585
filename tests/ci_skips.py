"""Under CI (``CI`` set, as ``.ci/run`` does), a fault-injection test
(marked ``slow``) that skips fails instead: a missing ``initdb``, Redis or
PostgreSQL must not turn the fault suite into a silent pass."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    return (os.environ.get("CI") or "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and under_ci() and item.get_closest_marker("slow") is not None:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"a fault-injection test may not skip under CI: {reason}"
    return report

"""``worker.py`` with the test-only filters of tests/security/hogs.py
installed (a bound the sandbox missed), for
tests/faults/test_template_memory.py: ``python -m tests.faults.hog_worker``."""

from __future__ import annotations

import sys

import worker
from tests.security import hogs

if __name__ == "__main__":
    hogs.install()
    raise SystemExit(worker.main(sys.argv[1:]))

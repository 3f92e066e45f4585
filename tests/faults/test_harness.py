"""The fault suite's own harness: it finds PostgreSQL's ``initdb`` whatever
the version, and under CI a skipped fault test is a failure."""

from __future__ import annotations

import stat

from tests.faults.procs import find_pg_bin


def _fake_initdb(root, version: str):
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    initdb = bin_dir / "initdb"
    initdb.write_text("#!/bin/sh\n")
    initdb.chmod(initdb.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_initdb_is_found_for_any_installed_version(tmp_path, monkeypatch):
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no pg_config, no initdb on PATH
    _fake_initdb(tmp_path, "14")
    newest = _fake_initdb(tmp_path, "17")
    (tmp_path / "16" / "bin").mkdir(parents=True)  # a version without initdb
    assert find_pg_bin(tmp_path) == newest


def test_pg_bin_overrides_the_lookup(tmp_path, monkeypatch):
    chosen = _fake_initdb(tmp_path / "custom", "x")
    monkeypatch.setenv("PG_BIN", str(chosen))
    assert find_pg_bin(tmp_path / "none") == chosen


def test_this_machine_has_an_initdb():
    found = find_pg_bin()
    assert found is not None and (found / "initdb").exists()


SKIPPING = """
import pytest

@pytest.mark.slow
def test_needs_a_cluster():
    pytest.skip("no initdb here")

def test_an_ordinary_skip():
    pytest.skip("not relevant")
"""


def test_under_ci_a_skipped_fault_test_fails(pytester, monkeypatch):
    pytester.makeini("[pytest]\nmarkers =\n    slow: fault-injection\n")
    pytester.makepyfile(SKIPPING)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_inprocess("-p", "tests.ci_skips")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*may not skip under CI: *no initdb here*"])


def test_outside_ci_it_is_a_skip(pytester, monkeypatch):
    pytester.makeini("[pytest]\nmarkers =\n    slow: fault-injection\n")
    pytester.makepyfile(SKIPPING)
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_inprocess("-p", "tests.ci_skips")
    result.assert_outcomes(skipped=2)

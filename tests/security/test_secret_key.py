"""SECRET_KEY: production mode (DATABASE_URL set) refuses to start without
one, naming it; the embedded default keeps its generated key readable by
its owner only (0600), and tightens a key file an older version left
world-readable."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

import app.config as app_config
from app.config import ROOT, ConfigurationError


def test_production_mode_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/none")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        app_config.from_environment()


def test_the_command_line_says_why_it_will_not_start():
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://postgres@127.0.0.1/none"}
    result = subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_mode_starts_with_a_secret_key(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/none")
    monkeypatch.setenv("SECRET_KEY", "shared by every host")
    assert app_config.from_environment()["SECRET_KEY"] == "shared by every host"


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setattr(app_config, "ROOT", tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    return tmp_path / "instance" / "secret_key"


def test_the_generated_key_file_is_readable_by_its_owner_only(instance):
    key = app_config.from_environment()["SECRET_KEY"]
    assert len(key) >= 48
    assert stat.S_IMODE(instance.stat().st_mode) == 0o600
    assert app_config.from_environment()["SECRET_KEY"] == key  # kept across restarts


def test_a_world_readable_key_file_is_tightened(instance):
    instance.parent.mkdir(parents=True)
    instance.write_text("an old key")
    instance.chmod(0o644)
    assert app_config.from_environment()["SECRET_KEY"] == "an old key"
    assert stat.S_IMODE(instance.stat().st_mode) == 0o600

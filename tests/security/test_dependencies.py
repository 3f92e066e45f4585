"""Dependencies: the floors that carry security fixes are declared, and
what is installed is requirements.lock, which pins (with hashes) every
requirement of pyproject.toml, so a fresh machine gets what CI tested."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from app.config import ROOT

FLOORS = {"jinja2": "3.1.6", "werkzeug": "3.1", "gunicorn": "23"}
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)")


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(line) for line in listed]


def _lock() -> dict[str, tuple[Version, list[str]]]:
    pins: dict[str, tuple[Version, list[str]]] = {}
    current = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = (Version(match.group(2)), [])
        elif current and "--hash=sha256:" in line:
            pins[current][1].append(line.strip())
    return pins


def test_the_security_floors_are_declared():
    declared = {canonicalize_name(req.name): req.specifier for req in _requirements()}
    for name, floor in FLOORS.items():
        assert name in declared, f"{name} is not declared in pyproject.toml"
        assert Version(floor) in declared[name], f"{name}: {declared[name]}"
        assert Version("0.1") not in declared[name], f"{name} has no floor"


def test_the_lock_pins_every_requirement_with_hashes():
    pins = _lock()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run `make lock`"
        version, hashes = pins[name]
        assert version in req.specifier, f"{req}: the lock pins {version}; run `make lock`"
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash in requirements.lock"
    for name, floor in FLOORS.items():
        assert pins[name][0] >= Version(floor)


def test_what_is_installed_is_what_the_lock_says():
    drift = {}
    for name, (version, _) in _lock().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            drift[name] = (str(version), None)
            continue
        if installed != version:
            drift[name] = (str(version), str(installed))
    assert drift == {}, f"installed packages differ from requirements.lock (make setup): {drift}"

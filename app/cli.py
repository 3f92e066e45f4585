"""The ``automation`` command: the Flask CLI bound to the app, with the
commands of :mod:`app.commands`."""

from __future__ import annotations

from flask.cli import FlaskGroup

from app import create_app


def main() -> None:
    FlaskGroup(create_app=lambda: create_app(), help="Marketing-automation workflows.").main()

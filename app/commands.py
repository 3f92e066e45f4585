"""The app's own CLI commands (``automation create-user``, ``doctor``...),
added to the Flask CLI by ``create_app``; the ``automation`` entry point
itself is :mod:`app.cli`."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import select

from app.automation.accounts import users as accounts
from app.automation.analytics import run_daily_analytics as run
from app.automation.engine.sweeper import process_waiting_executions
from app.automation.operations.monitor import check
from app.extensions import db
from app.models import Firm, User
from app.seed import seed_demo_data
from app.tenancy import firm_context


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_user)
    app.cli.add_command(create_token)
    app.cli.add_command(seed_demo)
    app.cli.add_command(run_daily_analytics)
    app.cli.add_command(process_waiting)
    app.cli.add_command(doctor)


def _firm_named(name: str, create: bool = True):
    firm = db.session.scalars(select(Firm).where(Firm.name == name)).first()
    if firm is None and create:
        firm = Firm(name=name)
        db.session.add(firm)
        db.session.flush()
    return firm


@click.command("create-user")
@click.argument("email")
@click.option("--firm", "firm_name", required=True, help="Firm name (created if needed).")
@click.option("--password", required=True)
@click.option("--role", type=click.Choice(["admin", "marketer", "portal"]), default="admin")
@click.option("--name", default="")
def create_user(email: str, firm_name: str, password: str, role: str, name: str) -> None:
    """Create a user (and the firm if needed)."""
    firm = _firm_named(firm_name)
    with firm_context(firm.id):
        try:
            # The admin page's rules (app/automation/accounts/users.py).
            user = accounts.create_user(email, password, role, name or email.split("@")[0])
        except accounts.AccountError as exc:
            db.session.rollback()
            raise click.ClickException(f"{exc} ({firm.name!r})") from None
    click.echo(f"created {role} {user.email} in firm {firm.name!r}")


@click.command("create-token")
@click.argument("email")
@click.option("--name", default="cli")
@click.option("--firm", "firm_name", default=None, help="Needed when EMAIL is in several firms.")
def create_token(email: str, name: str, firm_name: str | None) -> None:
    """Print a new API token for EMAIL, alone, on stdout."""
    users = User.all_with_email(email)
    if firm_name is not None:
        users = [user for user in users if user.firm.name == firm_name]
    if not users:
        raise click.ClickException(f"no user with e-mail {email}")
    if len(users) > 1:
        raise click.ClickException(f"{email} is in several firms: say which with --firm")
    user = users[0]
    with firm_context(user.firm_id):
        try:
            _, raw = accounts.issue_token(user, name)
        except accounts.AccountError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from None
    click.echo(raw)


@click.command("seed-demo")
def seed_demo() -> None:
    """Create a demo firm and user (idempotent) and print the login."""
    email, password, created = seed_demo_data()
    state = "created" if created else "exists"
    click.echo(f"demo login ({state}): {email} / {password}")


@click.command("run-daily-analytics")
def run_daily_analytics() -> None:
    """Compute yesterday's and today's analytics for every active workflow."""
    count = run()
    click.echo(f"analytics computed for {count} workflow(s)")


@click.command("process-waiting")
def process_waiting() -> None:
    """Run one sweep: resume due waits, re-enqueue stuck executions."""
    result = process_waiting_executions()
    click.echo(f"processed: {result}")


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json: bool) -> None:
    """Check for stuck work; exit 1 listing the problems (cron, health checks)."""
    import json

    try:
        report = check(all_firms=True)
    except Exception as exc:
        db.session.rollback()
        click.echo(f"doctor: cannot check: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(1) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        click.echo("ok: no stuck work")
    else:
        click.echo(f"{len(report.findings)} problem(s):")
        for finding in report.findings:
            click.echo(f"- [{finding.check}] {finding.summary}")
    raise SystemExit(0 if report.ok else 1)

"""Secrets never leak: the SMTP password, a firm's webhook signing key and
API tokens appear in no log line, execution result, error message (API or
HTML), audit entry or stored row (other than the signing key's own column);
API tokens are stored hashed.

Each test provokes the failure that would most naturally carry the secret:
an SMTP server that refuses the login and echoes back what it was sent, a
webhook receiver that answers 500 echoing every request header, and bearer
tokens that are wrong, revoked, or right. Then it searches everything a
person or a log shipper could see, in the plain and the encoded forms
(base64, as in SMTP AUTH and in the ``whsec_`` key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid

import pytest
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import ApiToken, Firm
from app.tenancy import firm_context
from tests.delivery.conftest import Receiver, SmtpInbox, _Controller, configured
from tests.engine.helpers import active_workflow, chain, execution, start
from tests.factories import make_contact

SMTP_USER = "mailer@acme.test"


def _forms(secret: str) -> set[str]:
    """The secret as it may travel: plain, base64 (AUTH LOGIN / PLAIN), and
    for a ``whsec_`` key its base64 body and the raw key bytes' hex."""
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    forms.add(base64.b64encode(f"\0{SMTP_USER}\0{secret}".encode()).decode())
    if secret.startswith("whsec_"):
        body = secret[len("whsec_") :]
        forms.add(body)
        forms.add(base64.b64decode(body).hex())
    return {form for form in forms if len(form) >= 8}


def _leaks(secret: str, where: dict[str, str]) -> list[str]:
    return [name for name, text in where.items() for form in _forms(secret) if form in text]


def _database_text(skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every stored row of every table, as text (core selects: all firms)."""
    db.session.rollback()
    conn = db.session.connection()
    out = {}
    for table in db.metadata.sorted_tables:
        rows = conn.execute(select(table)).mappings().all()
        out[f"db:{table.name}"] = "\n".join(
            json.dumps(
                {k: v for k, v in row.items() if f"{table.name}.{k}" not in skip}, default=str
            )
            for row in rows
        )
    db.session.rollback()
    return out


def _pages(client, auth, user, execution_id: int) -> dict[str, str]:
    """What a signed-in user sees about the execution, in HTML and JSON."""
    auth.login(user)
    seen = {}
    for path in (
        f"/executions/{execution_id}",
        "/dead-letters",
        "/outbox",
        f"/api/v1/automation/executions/{execution_id}/",
        "/api/v1/automation/executions/",
    ):
        response = client.get(path)
        seen[f"GET {path} ({response.status_code})"] = response.get_data(as_text=True)
    return seen


# The test's own SMTP server (aiosmtpd logs to "mail.log") is the remote
# side: what it logs is not ours.
NOT_OURS = ("mail.log",)


class Logs:
    def __init__(self, caplog):
        self.caplog = caplog

    @property
    def text(self) -> str:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(
            formatter.format(record)
            for record in self.caplog.records
            if not record.name.startswith(NOT_OURS)
        )


@pytest.fixture
def logs(caplog):
    """Everything our code logged at any level, with tracebacks."""
    caplog.set_level(logging.DEBUG)
    return Logs(caplog)


class EchoingAuth:
    """Refuses every login and, like a careless server, quotes it back."""

    def __call__(self, server, session, envelope, mechanism, auth_data):
        login = getattr(auth_data, "login", b"") or b""
        password = getattr(auth_data, "password", b"") or b""
        text = f"535 5.7.8 bad credentials {login.decode()}:{password.decode()}"
        return AuthResult(success=False, handled=False, message=text)


@pytest.fixture
def refusing_smtp(app):
    password = f"smtp-pw-{uuid.uuid4().hex}"
    controller = _Controller(
        SmtpInbox(),
        hostname="127.0.0.1",
        port=0,
        authenticator=EchoingAuth(),
        auth_require_tls=False,
    )
    controller.start()
    settings = dict(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=controller.port,
        SMTP_STARTTLS=False,
        SMTP_USERNAME=SMTP_USER,
        SMTP_PASSWORD=password,
    )
    with configured(app, **settings):
        yield password
    controller.stop()


def test_an_smtp_login_failure_never_shows_the_password(
    client, auth, acme, alice, logs, refusing_smtp
):
    mail = ("mail", "send_email", {"subject": "Hi", "body_text": "Hi", "max_attempts": 1})
    specs, edges = chain(mail, ("after", "add_tag", {"tag": "x"}))
    workflow = active_workflow(acme, alice, specs, edges)
    [execution_id] = start(workflow, make_contact(acme))
    drain()
    failed = execution(acme.id, execution_id)
    assert failed.status == "failed"
    assert "535" in (failed.last_error or ""), failed.last_error
    where = {"logs": logs.text, **_pages(client, auth, alice, execution_id), **_database_text()}
    assert _leaks(refusing_smtp, where) == [], {
        k: where[k][:3000] for k in _leaks(refusing_smtp, where)
    }
    print(f"\n[smtp password] places searched: {len(where)}, leaks: 0")


@pytest.fixture
def echoing_receiver(app):
    """Answers 500 and quotes every request header in its body."""
    receiver = Receiver()
    handler = receiver.server.RequestHandlerClass

    def echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        answer = json.dumps({"error": "nope", "you_sent": dict(self.headers.items())}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    handler.do_POST = echo
    with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
        yield receiver
    receiver.close()


def test_a_signed_webhook_that_fails_never_shows_the_signing_key(
    client, auth, acme, alice, logs, echoing_receiver
):
    hook = ("hook", "webhook", {"url": echoing_receiver.url + "/in", "max_attempts": 1})
    specs, edges = chain(hook, ("after", "add_tag", {"tag": "x"}))
    workflow = active_workflow(acme, alice, specs, edges)
    [execution_id] = start(workflow, make_contact(acme))
    drain()
    failed = execution(acme.id, execution_id)
    assert failed.status == "failed" and "500" in (failed.last_error or "")
    secret = db.session.get(Firm, acme.id).webhook_secret
    where = {
        "logs": logs.text,
        **_pages(client, auth, alice, execution_id),
        # The key must be stored to sign; nowhere else.
        **_database_text(skip=("firms.webhook_secret",)),
    }
    assert _leaks(secret, where) == []
    print(f"\n[webhook key] places searched: {len(where)}, leaks: 0")


def test_api_tokens_are_stored_hashed_and_never_echoed(client, acme, alice, bob, logs, runner):
    with firm_context(acme.id):
        token, raw = ApiToken.issue(alice, name="ci")
        revoked, revoked_raw = ApiToken.issue(bob, name="old")
        db.session.flush()
        from app.clock import now

        revoked.revoked_at = now()
        db.session.commit()
    cli = runner.invoke(args=["create-token", alice.email])
    assert cli.exit_code == 0, cli.output
    cli_raw = cli.output.strip().splitlines()[-1]
    wrong = "atk_" + uuid.uuid4().hex + uuid.uuid4().hex
    seen = {}
    for name, value in (
        ("good", raw),
        ("cli", cli_raw),
        ("revoked", revoked_raw),
        ("wrong", wrong),
    ):
        for header in (f"Bearer {value}", value, f"Basic {value}"):
            response = client.get("/api/v1/contacts/", headers={"Authorization": header})
            seen[f"{name} {header[:6]} ({response.status_code})"] = response.get_data(as_text=True)
        # A write, so the audit log has something by the token's hand.
        created = client.post(
            "/api/v1/contacts/",
            json={"email": f"{name}-{uuid.uuid4().hex[:6]}@example.com"},
            headers={"Authorization": f"Bearer {value}"},
        )
        seen[f"{name} create ({created.status_code})"] = created.get_data(as_text=True)
        assert created.status_code == (201 if name in ("good", "cli") else 401), created.get_json()
    where = {"logs": logs.text, **seen, **_database_text()}
    for value in (raw, cli_raw, revoked_raw, wrong):
        assert _leaks(value, where) == []
    with firm_context(acme.id):
        hashes = db.session.scalars(select(ApiToken.token_hash)).all()
    assert hashlib.sha256(raw.encode()).hexdigest() in hashes
    assert not {raw, cli_raw, revoked_raw} & set(hashes)
    print(f"\n[api tokens] tokens: 4, places searched: {len(where)}, leaks: 0")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_real_worker_and_web_logs_never_show_secrets(
    app, acme, alice, logs, echoing_receiver, database_url, redis_url, tmp_path, token_for
):
    """``worker.py`` at DEBUG and the served web app, through an SMTP login
    refusal, a failing signed webhook and good and bad bearer tokens."""
    import time

    import httpx

    from tests.faults.events_support import served, worker_processes

    password = f"smtp-pw-{uuid.uuid4().hex}"
    controller = _Controller(
        SmtpInbox(),
        hostname="127.0.0.1",
        port=0,
        authenticator=EchoingAuth(),
        auth_require_tls=False,
    )
    controller.start()
    mail = ("mail", "send_email", {"subject": "Hi", "body_text": "Hi", "max_attempts": 1})
    hook = ("hook", "webhook", {"url": echoing_receiver.url + "/in", "max_attempts": 1})
    mailing = active_workflow(acme, alice, *chain(mail), name="mailing")
    hooking = active_workflow(acme, alice, *chain(hook), name="hooking")
    contact = make_contact(acme)
    good = token_for(alice)
    wrong = "atk_" + uuid.uuid4().hex
    log_path = tmp_path / "worker.log"
    env = {
        "LOG_LEVEL": "DEBUG",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": controller.port,
        "SMTP_STARTTLS": "0",
        "SMTP_USERNAME": SMTP_USER,
        "SMTP_PASSWORD": password,
        "WEBHOOK_ALLOW_PRIVATE": "1",
    }
    seen = {}
    try:
        with (
            worker_processes(database_url, redis_url, 1, log_path=str(log_path), **env),
            served(app) as base,
            httpx.Client(trust_env=False, timeout=30) as http,
        ):
            for workflow in (mailing, hooking):
                url = f"{base}/api/v1/automation/workflows/{workflow.id}/trigger/"
                answer = http.post(url, json={"contact_id": contact.id}, headers=good)
                assert answer.status_code == 201, answer.text
            bad = http.get(f"{base}/api/v1/contacts/", headers={"Authorization": f"Bearer {wrong}"})
            seen[f"bad token ({bad.status_code})"] = bad.text
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                statuses = {
                    execution(acme.id, i).status
                    for i in (
                        http.get(
                            f"{base}/api/v1/automation/executions/?workflow={w.id}",
                            headers=good,
                        ).json()["results"][0]["id"]
                        for w in (mailing, hooking)
                    )
                }
                if statuses == {"failed"}:
                    break
                time.sleep(0.5)
            assert statuses == {"failed"}, statuses
            listing = http.get(f"{base}/api/v1/automation/executions/", headers=good)
            seen["executions"] = listing.text
    finally:
        controller.stop()
    worker_log = log_path.read_text()
    assert "DEBUG" in worker_log or "INFO" in worker_log, worker_log[-2000:]
    where = {
        "worker log": worker_log,
        "web logs": logs.text,
        **seen,
        **_database_text(("firms.webhook_secret",)),
    }
    secret = db.session.get(Firm, acme.id).webhook_secret
    raw_good = good["Authorization"].split()[1]
    for value in (password, secret, raw_good, wrong):
        assert _leaks(value, where) == [], (value[:8], _leaks(value, where))
    print(
        f"\n[secrets, real worker] worker log {len(worker_log)} chars, places searched: "
        f"{len(where)}, secrets: 4, leaks: 0"
    )

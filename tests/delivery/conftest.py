"""Real receivers for delivery tests: an in-process SMTP server (aiosmtpd)
and a threaded HTTP server, both on 127.0.0.1 with a free port."""

from __future__ import annotations

import email
import json
import threading
import uuid
from contextlib import contextmanager
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from app.automation.delivery.outbox import build_outbox_row
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow


class _Controller(Controller):
    """aiosmtpd's controller on port 0: learn the port before the self-test."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpInbox:
    """Collects every message the server accepted."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.sessions: set[int] = set()
        self.refusals: list[str] = []  # RCPT answers to give first, e.g. "451 later"
        # Chosen recipients' RCPT answer, every time: {"gone@x.test": "550 5.1.1 ..."}
        self.refuse: dict[str, str] = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refusals:
            return self.refusals.pop(0)
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.sessions.add(id(session))
        return "250 Message accepted for delivery"


class PipeliningInbox(SmtpInbox):
    """An inbox whose server offers PIPELINING (RFC 2920), as Postfix and
    the big relays do. ``refuse_keeping_data``: recipients refused at RCPT
    whose DATA is still answered 354, as some servers do."""

    def __init__(self):
        super().__init__()
        self.refuse_keeping_data: dict[str, str] = {}
        self.mail_refusal: str | None = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_refusal:
            return self.mail_refusal
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse_keeping_data:
            envelope.rcpt_tos.append(address)
            return self.refuse_keeping_data[address.lower()]
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@contextmanager
def configured(app, **overrides):
    """Change app settings for one test and put them back."""
    saved = {key: app.config.get(key) for key in overrides}
    app.config.update(overrides)
    try:
        yield
    finally:
        app.config.update(saved)


@pytest.fixture
def smtp_server(app):
    yield from _serving(app, SmtpInbox())


@pytest.fixture
def pipelining_smtp_server(app):
    yield from _serving(app, PipeliningInbox())


def _serving(app, inbox):
    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    with configured(app, SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port, SMTP_STARTTLS=False):
        yield inbox
    controller.stop()


class Receiver:
    """A local HTTP receiver: records requests, answers from a script."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls=None):
        """``tls``: an ``ssl.SSLContext`` (server side) to answer https."""
        self.requests: list[dict] = []
        self.statuses: list[int] = []  # answers, in order; then 200
        self.redirect_to: str | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "peer": self.client_address[0],
                        }
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.redirect_to:
                    status = 302
                answer = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                if receiver.redirect_to:
                    self.send_header("Location", receiver.redirect_to)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(app):
    server = Receiver()
    with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
        yield server
    server.close()


def make_execution(firm, workflow, contact, **fields) -> WorkflowExecution:
    with firm_context(firm.id):
        execution = WorkflowExecution(
            workflow_id=workflow.id,
            contact_id=contact.id,
            status=fields.pop("status", "waiting"),
            wait_reason=fields.pop("wait_reason", "delivery"),
            current_node=fields.pop("current_node", None),
            idempotency_key=uuid.uuid4().hex,
            **fields,
        )
        db.session.add(execution)
        db.session.commit()
    return execution


def queue_message(firm, node_type: str, configuration: dict, contact=None, **execution_fields):
    """A one-node workflow, an execution waiting on it and its outbox row
    as the engine would write it. Returns the OutboxMessage."""
    contact = contact or make_contact(firm, first_name="Ann", phone="+15550100")
    workflow = make_workflow(
        firm,
        name=f"wf-{uuid.uuid4().hex[:8]}",
        nodes=[{"node_id": "step", "node_type": node_type, "configuration": configuration}],
    )
    execution = make_execution(firm, workflow, contact, current_node="step", **execution_fields)
    with firm_context(firm.id):
        node = workflow.nodes[0]
        row = build_outbox_row(
            firm_id=firm.id, execution=execution, node=node, visit=1, context=None, contact=contact
        )
        message = OutboxMessage(**row)
        db.session.add(message)
        db.session.commit()
    return message


def reload(message: OutboxMessage) -> OutboxMessage:
    with firm_context(message.firm_id):
        db.session.expire_all()
        return db.session.get(OutboxMessage, message.id)

"""STARTTLS for real: an aiosmtpd server that requires it, with a
certificate from a CA made in the test (trustme). The sender upgrades the
connection, checks the certificate against the trusted CAs and the host
name, logs in only inside TLS, and hands the message over; against a
certificate it cannot verify, or a server that offers no STARTTLS, it sends
nothing in the clear."""

from __future__ import annotations

import ssl

import pytest
import trustme
from aiosmtpd.smtp import AuthResult

from app.automation.delivery.dispatcher import deliver_due
from tests.delivery.conftest import SmtpInbox, _Controller, configured, queue_message, reload

USER, PASSWORD = "mailer", "relay password"


class TlsInbox(SmtpInbox):
    """Also notes whether each message came over TLS, and who logged in."""

    def __init__(self):
        super().__init__()
        self.tls: list[bool] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


def _authenticate(inbox):
    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        if ok:
            inbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    return check


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def tls_server(app, ca, tmp_path, monkeypatch):
    """A STARTTLS-only relay on 127.0.0.1; the machine trusts the test CA
    (SSL_CERT_FILE, read by ssl.create_default_context)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    inbox = TlsInbox()
    controller = _Controller(
        inbox,
        hostname="127.0.0.1",
        port=0,
        tls_context=server_context,
        require_starttls=True,
        authenticator=_authenticate(inbox),
        auth_require_tls=True,
    )
    controller.start()
    trusted = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(trusted))
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    settings = dict(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=controller.port,
        SMTP_STARTTLS=True,
        SMTP_USERNAME=USER,
        SMTP_PASSWORD=PASSWORD,
    )
    with configured(app, **settings):
        yield inbox
    controller.stop()


def test_a_message_goes_over_starttls_after_a_login_inside_tls(acme, tls_server):
    message = queue_message(acme, "send_email", {"subject": "Secure", "body_text": "Hi"})
    assert deliver_due() == 1
    [received] = tls_server.messages
    assert received["Subject"] == "Secure"
    assert tls_server.tls == [True]
    assert tls_server.logins == [USER]
    assert reload(message).status == "sent"


def test_an_untrusted_certificate_sends_nothing(acme, tls_server, tmp_path, monkeypatch):
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    monkeypatch.setenv("SSL_CERT_FILE", str(stranger))
    message = queue_message(acme, "send_email", {"subject": "Secure", "body_text": "Hi"})
    deliver_due()
    assert tls_server.messages == [] and tls_server.logins == []
    fresh = reload(message)
    assert fresh.status == "pending"
    assert "SSLCertVerificationError" in fresh.last_error


def test_a_server_without_starttls_gets_nothing_in_the_clear(app, acme):
    inbox = TlsInbox()
    plain = _Controller(inbox, hostname="127.0.0.1", port=0)
    plain.start()
    try:
        with configured(app, SMTP_HOST="127.0.0.1", SMTP_PORT=plain.port, SMTP_STARTTLS=True):
            message = queue_message(acme, "send_email", {"subject": "Secure", "body_text": "Hi"})
            deliver_due()
    finally:
        plain.stop()
    assert inbox.messages == []
    assert reload(message).status == "pending"

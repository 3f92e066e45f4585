"""DNS pinning and TLS for webhooks (docs/SENDING.md, "Webhooks").

The resolver is simulated by answering ``socket.getaddrinfo`` for names
under ``.test`` (DNS cannot be run for real here); everything else is
real: HTTP and HTTPS receivers on loopback addresses, certificates made
for the test, the dispatcher's own clients.

- A name resolved once by the send-time check is connected to at that
  address; a second, different answer (DNS rebinding) is never asked for
  and never reached.
- Over https the name goes out as SNI and the certificate is verified for
  the name (not for the pinned IP); a certificate for another name is
  refused, also when two names share one address and a keep-alive
  connection to the first is open.
"""

from __future__ import annotations

import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.automation.delivery.dispatcher import Transports, deliver_due
from app.automation.delivery.errors import SendFailed
from tests.delivery.conftest import Receiver, configured, queue_message, reload
from tests.security.fake_dns import FakeDns


@pytest.fixture
def dns(monkeypatch):
    return FakeDns(monkeypatch)


def test_a_name_that_rebinds_after_the_check_is_called_at_the_checked_address(app, acme, dns):
    checked = Receiver("127.0.0.1")
    rebound = Receiver("127.0.0.2", port=checked.port)  # same port, other address
    dns.answers["rebind.test"] = ["127.0.0.1", "127.0.0.2"]
    try:
        with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
            message = queue_message(
                acme, "webhook", {"url": f"http://rebind.test:{checked.port}/hook"}
            )
            assert deliver_due() == 1
    finally:
        checked.close()
        rebound.close()
    assert reload(message).status == "sent"
    [request] = checked.requests
    assert request["headers"]["host"] == f"rebind.test:{checked.port}"
    assert rebound.requests == []
    assert dns.lookups == ["rebind.test"]  # resolved once: by the check


def test_a_public_answer_then_loopback_never_reaches_loopback(app, acme, dns):
    loopback = Receiver("127.0.0.1")
    # A public address passes the check; nothing listens for us there, so
    # the pinned connection fails or times out. Loopback is never tried.
    dns.answers["rebind.test"] = ["93.184.216.34", "127.0.0.1"]
    try:
        with configured(app, WEBHOOK_ALLOW_PRIVATE=False):
            message = queue_message(
                acme,
                "webhook",
                {"url": f"http://rebind.test:{loopback.port}/hook", "timeout_seconds": 1},
            )
            assert deliver_due() == 1
    finally:
        loopback.close()
    fresh = reload(message)
    assert fresh.status != "sent"
    assert fresh.last_error.startswith(("request failed", "timed out")), fresh.last_error
    assert loopback.requests == []
    assert dns.lookups == ["rebind.test"]


class Certificates:
    """A CA and leaf certificates signed by it, written as PEM files."""

    def __init__(self, directory):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server-side context with a certificate for ``names``."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / names[0]
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


class TlsReceiver(Receiver):
    """An https receiver on 127.0.0.1 that records the SNI of each handshake."""

    def __init__(self, context: ssl.SSLContext):
        self.sni: list[str | None] = []
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        super().__init__("127.0.0.1", tls=context)


@pytest.fixture
def certificates(tmp_path):
    return Certificates(tmp_path)


def _tls(app, certificates):
    return configured(app, WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_CA_BUNDLE=str(certificates.ca_file))


def test_https_sends_the_name_as_sni_and_verifies_the_certificate_for_it(
    app, acme, dns, certificates
):
    receiver = TlsReceiver(certificates.server_context("hooks.test"))
    dns.answers["hooks.test"] = ["127.0.0.1"]
    try:
        with _tls(app, certificates):
            message = queue_message(
                acme, "webhook", {"url": f"https://hooks.test:{receiver.port}/in"}
            )
            assert deliver_due() == 1
    finally:
        receiver.close()
    fresh = reload(message)
    assert fresh.status == "sent", fresh.last_error
    assert receiver.sni == ["hooks.test"]
    [request] = receiver.requests
    assert request["headers"]["host"] == f"hooks.test:{receiver.port}"
    assert dns.lookups == ["hooks.test"]


def test_a_certificate_for_another_name_is_refused(app, acme, dns, certificates):
    receiver = TlsReceiver(certificates.server_context("other.test"))
    dns.answers["hooks.test"] = ["127.0.0.1"]
    try:
        with _tls(app, certificates):
            message = queue_message(
                acme, "webhook", {"url": f"https://hooks.test:{receiver.port}/in"}
            )
            assert deliver_due() == 1
    finally:
        receiver.close()
    fresh = reload(message)
    assert fresh.status != "sent"
    assert fresh.last_error == "request failed: ConnectError"
    assert receiver.requests == []
    assert receiver.sni == ["hooks.test"]


def test_an_untrusted_certificate_is_refused_without_the_ca_bundle(app, acme, dns, certificates):
    receiver = TlsReceiver(certificates.server_context("hooks.test"))
    dns.answers["hooks.test"] = ["127.0.0.1"]
    try:
        with configured(app, WEBHOOK_ALLOW_PRIVATE=True, WEBHOOK_CA_BUNDLE=None):
            message = queue_message(
                acme, "webhook", {"url": f"https://hooks.test:{receiver.port}/in"}
            )
            assert deliver_due() == 1
    finally:
        receiver.close()
    assert reload(message).last_error == "request failed: ConnectError"
    assert receiver.requests == []


def test_two_names_on_one_address_never_share_a_tls_session(app, acme, dns, certificates):
    # The certificate is for a.test only. b.test resolves to the same
    # address: its request must not ride a.test's keep-alive connection
    # (verified for a.test), but make its own handshake, and fail it. One
    # dispatcher run's transports send both, a.test first.
    receiver = TlsReceiver(certificates.server_context("a.test"))
    dns.answers["a.test"] = ["127.0.0.1"]
    dns.answers["b.test"] = ["127.0.0.1"]
    try:
        with _tls(app, certificates):
            first = queue_message(acme, "webhook", {"url": f"https://a.test:{receiver.port}/in"})
            second = queue_message(acme, "webhook", {"url": f"https://b.test:{receiver.port}/in"})
            transports = Transports(app.config)
            try:
                assert transports.send(reload(first))["status_code"] == 200
                with pytest.raises(SendFailed, match="request failed: ConnectError"):
                    transports.send(reload(second))
            finally:
                transports.close()
    finally:
        receiver.close()
    assert [r["headers"]["host"] for r in receiver.requests] == [f"a.test:{receiver.port}"]
    assert receiver.sni == ["a.test", "b.test"]

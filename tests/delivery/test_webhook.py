"""Webhooks to a real local HTTP receiver; the SSRF guard; the SMS gateway."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.signing import InvalidSignature, secret_key, sign_headers, verify
from app.automation.delivery.webhook import UnsafeURL, check_url
from app.clock import now
from tests.delivery.conftest import configured, queue_message, reload


def test_a_webhook_is_signed_the_standard_webhooks_way(acme, receiver):
    message = queue_message(
        acme,
        "webhook",
        {
            "url": receiver.url + "/hooks/in?x=1",
            "headers": {"X-Source": "automation"},
            "payload": {"email": "{{ contact.email }}", "name": "{{ contact.first_name }}"},
        },
    )
    assert deliver_due() == 1
    [request] = receiver.requests
    headers = request["headers"]
    assert request["method"] == "POST" and request["path"] == "/hooks/in?x=1"
    assert json.loads(request["body"])["name"] == "Ann"
    assert headers["x-source"] == "automation"
    assert headers["idempotency-key"] == headers["webhook-id"] == message.message_id
    # The receiver's check, with the firm's secret:
    assert verify(acme.webhook_secret, headers, request["body"]) == message.message_id
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    fresh = reload(message)
    assert fresh.status == "sent" and fresh.response["status_code"] == 200
    assert acme.webhook_secret not in json.dumps(fresh.response)


def test_the_signature_matches_the_standard_webhooks_test_vector():
    # From the Standard Webhooks specification's reference implementations.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = sign_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", body, timestamp=1614265330)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_whsec_secrets_are_base64_decoded(acme):
    assert acme.webhook_secret.startswith("whsec_")
    assert len(secret_key(acme.webhook_secret)) == 32
    assert secret_key("plain text secret") == b"plain text secret"


def test_stale_or_forged_signatures_are_refused():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    old = int((now() - timedelta(minutes=6)).timestamp())
    with pytest.raises(InvalidSignature, match="stale"):
        verify(secret, sign_headers(secret, "msg_1", b"{}", timestamp=old), b"{}")
    with pytest.raises(InvalidSignature, match="mismatch"):
        verify(secret, sign_headers(secret, "msg_1", b"{}"), b'{"x":1}')
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, {}, b"{}")


def test_a_failing_receiver_is_retried_with_backoff_then_failed(acme, receiver):
    receiver.statuses = [500, 503, 502]
    message = queue_message(
        acme,
        "webhook",
        {"url": receiver.url + "/hook", "max_attempts": 3, "retry_backoff_seconds": 30},
    )
    start = now()
    assert deliver_due() == 1
    first = reload(message)
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error == "receiver answered HTTP 500"
    assert timedelta(seconds=29) < first.next_attempt_at - start < timedelta(seconds=32)
    assert deliver_due() == 0  # not due yet

    with time_machine.travel(start + timedelta(seconds=31), tick=False):
        assert deliver_due() == 1
        second = reload(message)
        assert (second.status, second.attempts) == ("pending", 2)
        # The second wait is twice the first.
        assert second.next_attempt_at - now() == timedelta(seconds=60)

    with time_machine.travel(start + timedelta(seconds=92), tick=False):
        assert deliver_due() == 1
    final = reload(message)
    assert (final.status, final.attempts) == ("failed", 3)
    assert final.last_error == "receiver answered HTTP 502"
    assert len(receiver.requests) == 3
    keys = {r["headers"]["idempotency-key"] for r in receiver.requests}
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert keys == ids == {message.message_id}


def test_the_request_goes_to_the_checked_address_under_its_name(acme, receiver):
    queue_message(acme, "webhook", {"url": f"http://localhost:{receiver.port}/hook"})
    deliver_due()
    [request] = receiver.requests
    # Connected to the resolved 127.0.0.1, the Host header keeps the name.
    assert request["headers"]["host"] == f"localhost:{receiver.port}"


def test_redirects_are_not_followed(acme, receiver):
    receiver.redirect_to = "http://127.0.0.1:9/internal"
    message = queue_message(acme, "webhook", {"url": receiver.url + "/hook", "max_attempts": 1})
    deliver_due()
    fresh = reload(message)
    assert fresh.status == "failed"
    assert fresh.last_error == "receiver answered HTTP 302"
    assert len(receiver.requests) == 1


def test_a_timeout_is_a_failure(acme, receiver):
    receiver.server.RequestHandlerClass.do_POST = lambda self: __import__("time").sleep(2)
    message = queue_message(
        acme, "webhook", {"url": receiver.url + "/slow", "timeout_seconds": 0.3, "max_attempts": 1}
    )
    deliver_due()
    fresh = reload(message)
    assert fresh.status == "failed" and fresh.last_error == "timed out after 0.3s"


def test_a_private_address_is_refused_at_send_time(app, acme, receiver):
    message = queue_message(acme, "webhook", {"url": receiver.url + "/hook"})
    with configured(app, WEBHOOK_ALLOW_PRIVATE=False):
        deliver_due()
    fresh = reload(message)
    assert fresh.status == "failed" and "non-public address" in fresh.last_error
    assert receiver.requests == []


SSRF_CORPUS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/admin",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://10.0.0.5/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://0x7f.0.0.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[::]/",
    "http://localhost/",
    "http://LOCALHOST:5000/",
    "ftp://example.com/file",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "javascript:alert(1)",
    "http://user:pass@example.com/",
    "http:///nohost",
    "",
]


@pytest.mark.parametrize("url", SSRF_CORPUS)
def test_the_ssrf_guard_refuses(url):
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


def test_the_ssrf_guard_accepts_a_public_address():
    check_url("https://93.184.215.14/hook", allow_private=False)
    check_url("http://[2606:4700:4700::1111]/hook", allow_private=False)


def test_allow_private_lifts_the_address_check_but_not_the_scheme_check():
    check_url("http://127.0.0.1:8080/hook", allow_private=True)
    with pytest.raises(UnsafeURL):
        check_url("file:///etc/passwd", allow_private=True)


def test_an_sms_goes_to_the_gateway_with_an_idempotency_key(app, acme, receiver):
    with configured(app, SMS_GATEWAY_URL=receiver.url + "/sms"):
        message = queue_message(acme, "send_sms", {"body": "Hi {{ contact.first_name }}"})
        assert message.status == "pending"
        assert deliver_due() == 1
    [request] = receiver.requests
    assert json.loads(request["body"]) == {
        "to": "+15550100",
        "body": "Hi Ann",
        "idempotency_key": message.message_id,
    }
    assert request["headers"]["idempotency-key"] == message.message_id
    assert reload(message).status == "sent"

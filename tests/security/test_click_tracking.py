"""Click tracking never turns contact data into an open redirect
(docs/SENDING.md, "Click tracking").

A tracked link redirects from our domain. Only links whose target the
template wrote (literal, or literal up to a query with merge tags) or that
point at one of the firm's sending domains are rewritten; a link built
from contact data (``href="{{ contact.custom.site }}"``, which a public
form may fill) goes out as it is, in the HTML and the text part. Real SMTP
(aiosmtpd), real click endpoint.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.tracking import read_token
from app.extensions import db
from app.models import OutboxMessage, SendingDomain
from app.tenancy import firm_context
from tests.delivery.conftest import SmtpInbox, _Controller, configured, queue_message
from tests.factories import make_contact

EVIL = "https://evil.example/phish"
TOKEN = re.compile(r"http://localhost/t/c/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")

HTML = """<p>
<a href="https://shop.example/sale">Sale</a>
<a href="{{ contact.custom.site }}">Your site</a>
<a href="https://shop.example/p?id={{ contact.id }}&amp;ref=mail">Product</a>
<a href="https://{{ contact.custom.sub }}.shop.example/">Your shop</a>
<a href="https://shop.example/{{ contact.custom.path }}">Path</a>
<a href="mailto:help@shop.example">Mail us</a>
</p>"""
TEXT = "Sale: https://shop.example/sale\nYours: {{ contact.custom.site }}\n"


@pytest.fixture
def smtp_server(app):
    inbox = SmtpInbox()
    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    with configured(app, SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port, SMTP_STARTTLS=False):
        yield inbox
    controller.stop()


def _send(acme, smtp_server, configuration, **contact_fields):
    contact = make_contact(acme, first_name="Ann", **contact_fields)
    message = queue_message(acme, "send_email", {"subject": "Hi", **configuration}, contact)
    assert deliver_due() == 1
    [received] = smtp_server.messages
    html = received.get_body(preferencelist=("html",)).get_content()
    text = received.get_body(preferencelist=("plain",)).get_content()
    return message, html, text


def _tracked(part: str) -> list[str]:
    """The URLs the click tokens of one part redirect to (but the hidden
    decoy link every e-mail carries, ours: delivery/engagement.py)."""
    urls = [read_token("click", token).url for token in TOKEN.findall(part)]
    return [url for url in urls if url != "http://localhost/t/hp"]


def test_only_links_the_template_wrote_are_tracked(acme, smtp_server):
    custom = {"site": EVIL, "sub": "evil.example/x?", "path": "//evil.example"}
    message, html, text = _send(
        acme, smtp_server, {"body_html": HTML, "body_text": TEXT}, custom_fields=custom
    )
    tracked = _tracked(html)
    assert "https://shop.example/sale" in tracked
    assert any(url.startswith("https://shop.example/p?id=") for url in tracked), tracked
    assert not any("evil" in url for url in tracked), tracked
    # The contact's links went out untracked, exactly as rendered.
    assert f'href="{EVIL}"' in html
    assert 'href="https://evil.example/x?.shop.example/"' in html
    assert 'href="mailto:help@shop.example"' in html
    # The text part follows the same rule.
    assert _tracked(text) == ["https://shop.example/sale"]
    assert f"Yours: {EVIL}" in text
    assert message.message_id  # sent from a row written by the engine's builder


def test_a_text_only_email_tracks_its_literal_urls_only(acme, smtp_server):
    _, html, text = _send(acme, smtp_server, {"body_text": TEXT}, custom_fields={"site": EVIL})
    assert _tracked(text) == ["https://shop.example/sale"]
    assert _tracked(html) == ["https://shop.example/sale"]
    assert EVIL in html and EVIL in text


def test_links_to_the_firms_sending_domains_are_tracked_even_when_dynamic(acme, smtp_server):
    with firm_context(acme.id):
        db.session.add(SendingDomain(domain="acme.example"))
        db.session.commit()
    body = "".join(f'<a href="{{{{ contact.custom.{key} }}}}">{key}</a>' for key in "abcd")
    custom = {
        "a": "https://www.acme.example/offer?for=ann",
        "b": "https://acme.example/",
        "c": "https://acme.example.evil.example/",
        "d": "https://evil.example\\@acme.example/",
    }
    _, html, _ = _send(acme, smtp_server, {"body_html": body}, custom_fields=custom)
    assert sorted(_tracked(html)) == [
        "https://acme.example/",
        "https://www.acme.example/offer?for=ann",
    ]
    assert 'href="https://acme.example.evil.example/"' in html


def test_the_click_endpoint_redirects_only_to_what_the_rewrite_signed(client, acme, smtp_server):
    _, html, _ = _send(acme, smtp_server, {"body_html": HTML}, custom_fields={"site": EVIL})
    [token] = [t for t in TOKEN.findall(html) if read_token("click", t).url.endswith("/sale")]
    answer = client.get(f"/t/c/{token}")
    assert answer.status_code == 302 and answer.headers["Location"] == "https://shop.example/sale"
    # The same signature over a payload naming another URL is refused.
    body, mac = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps([*payload[:2], EVIL]).encode()).rstrip(b"=")
    refused = client.get(f"/t/c/{forged.decode()}.{mac}")
    assert refused.status_code in (400, 404)
    assert "evil" not in refused.headers.get("Location", "")


def test_a_row_written_before_links_were_recorded_tracks_only_the_firms_domains(acme, smtp_server):
    with firm_context(acme.id):
        db.session.add(SendingDomain(domain="acme.example"))
        db.session.commit()
    body = '<a href="https://shop.example/sale">Sale</a> <a href="https://acme.example/a">A</a>'
    message = queue_message(acme, "send_email", {"subject": "Hi", "body_html": body})
    with firm_context(acme.id):
        row = db.session.get(OutboxMessage, message.id)
        row.payload = {k: v for k, v in row.payload.items() if k != "links"}
        db.session.commit()
    assert deliver_due() == 1
    [received] = smtp_server.messages
    html = received.get_body(preferencelist=("html",)).get_content()
    assert _tracked(html) == ["https://acme.example/a"]
    assert 'href="https://shop.example/sale"' in html

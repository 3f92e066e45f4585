"""Tracking links under attack: tampered, forged, expired (old key, purged
message) and other-firm tokens never redirect anywhere the e-mail did not
link to and record nothing; an unsubscribe token only ever unsubscribes
the contact it was sent to; GET on the one-click URL only asks. And the
login's ``next`` never sends the browser to another host."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.signing import _derived as _keys
from app.automation.delivery.tracking import make_token
from app.extensions import db
from app.models import Contact, EventLog, OutboxMessage, TrackingEvent
from app.tenancy import firm_context
from tests.delivery.conftest import SmtpInbox, _Controller, configured, queue_message
from tests.factories import make_contact

HTML = (
    '<p><a href="https://example.com/offer">offer</a> '
    '<a href="https://shop.example.com/cart?id=1">cart</a></p>'
)
ELSEWHERE = ("https://evil.example/", "javascript:alert(1)", "//evil.example/", "/admin")


@pytest.fixture
def smtp(app):
    inbox = SmtpInbox()
    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    with configured(app, SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port, SMTP_STARTTLS=False):
        yield inbox
    controller.stop()


def _links(message) -> dict:
    body = message.get_body(preferencelist=("html",)).get_content()
    return {
        "open": re.search(r'src="http://localhost(/t/o/[^"]+)"', body).group(1),
        "clicks": re.findall(r'href="http://localhost(/t/c/[^"]+)"', body),
        "unsubscribe": re.search(r'href="http://localhost(/t/u/[^"]+)"', body).group(1),
        "one_click": message["List-Unsubscribe"].strip("<>").removeprefix("http://localhost"),
    }


@pytest.fixture
def two_sent(acme, smtp):
    """E-mails sent to contacts A and B of Acme: (rows, links) per contact."""
    sent = {}
    for name in ("a", "b"):
        contact = make_contact(acme, email=f"{name}@example.com", first_name=name.upper())
        row = queue_message(
            acme, "send_email", {"subject": "Hi", "body_html": HTML}, contact=contact
        )
        deliver_due()
        sent[name] = (row, contact, _links(smtp.messages[-1]))
    return sent


def _recorded(firm) -> tuple[int, int]:
    with firm_context(firm.id):
        events = db.session.scalar(select(func.count()).select_from(TrackingEvent))
        bus = db.session.scalar(select(func.count()).select_from(EventLog))
    return events, bus


def _subscribed(firm, contact) -> bool:
    with firm_context(firm.id):
        db.session.expire_all()
        return not db.session.get(Contact, contact.id).unsubscribed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forgeries(token: str, kind: str, firm_id: int, outbox_id: int) -> list[str]:
    body, _, signature = token.partition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_url = _b64(json.dumps([firm_id, outbox_id, "https://evil.example/"]).encode())
    other_row = _b64(json.dumps([firm_id, outbox_id + 1000]).encode())
    bools = _b64(json.dumps([True, True]).encode())
    return [
        f"{body}.{flipped}",
        f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{signature}",
        f"{other_url}.{signature}",
        f"{other_row}.{signature}",
        f"{bools}.{signature}",
        body,
        f"{body}.",
        f".{signature}",
        f"{body}.{signature[:-2]}",
        f"{body}.{signature}.{signature}",
        f"{body}.{signature}=",
        token.upper(),
        "x" * 5000,
        "%00",
        "..%2f..%2fadmin",
        make_token("open" if kind != "open" else "click", firm_id, outbox_id, "https://x.test/"),
    ]


def test_tampered_and_forged_tokens_are_404_and_record_nothing(client, acme, two_sent):
    row, contact, links = two_sent["a"]
    before = _recorded(acme)
    tried = 0
    for kind, path in (
        ("open", links["open"]),
        ("click", links["clicks"][0]),
        ("unsubscribe", links["unsubscribe"]),
    ):
        prefix, token = path.rsplit("/", 1)
        suffix = ".gif" if kind == "open" else ""
        token = token.removesuffix(suffix)
        for forged in _forgeries(token, kind, acme.id, row.id):
            url = f"{prefix}/{forged}{suffix}"
            for method in ("GET", "POST") if kind == "unsubscribe" else ("GET",):
                response = client.open(url, method=method)
                tried += 1
                assert response.status_code in (404, 400), (kind, forged, response.status_code)
                assert "Location" not in response.headers
                assert b"evil" not in response.data
    assert _recorded(acme) == before
    assert _subscribed(acme, contact)
    print(f"\ntracking: {tried} forged requests, 0 redirects, 0 recorded")


def test_a_click_only_ever_redirects_to_a_link_the_email_contained(client, acme, two_sent):
    # Every e-mail also carries the hidden decoy link (delivery/engagement.py).
    sent_urls = {"https://example.com/offer", "https://shop.example.com/cart?id=1"}
    sent_urls.add("http://localhost/t/hp")
    row, _, links = two_sent["a"]
    for path in links["clicks"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] in sent_urls
    # A token we never put in an e-mail, even one we signed for this
    # message, with a scheme we do not redirect to, is refused.
    for target in ELSEWHERE[1:]:
        assert client.get(f"/t/c/{make_token('click', acme.id, row.id, target)}").status_code == 404


def test_tokens_signed_under_an_old_key_or_for_a_purged_message_are_404(
    app, client, acme, two_sent
):
    row, contact, links = two_sent["a"]
    before = _recorded(acme)
    with configured(app, SECRET_KEY="the-key-before-rotation"), app.test_request_context():
        old = {
            "open": f"/t/o/{make_token('open', acme.id, row.id)}.gif",
            "click": f"/t/c/{make_token('click', acme.id, row.id, 'https://example.com/offer')}",
            "unsubscribe": f"/t/u/{make_token('unsubscribe', acme.id, row.id)}",
        }
    for path in old.values():
        assert client.get(path).status_code == 404
    assert client.post(old["unsubscribe"]).status_code == 404
    # The message is purged: its (valid) links now find nothing.
    with firm_context(acme.id):
        db.session.delete(db.session.get(OutboxMessage, row.id))
        db.session.commit()
    for path in (links["open"], links["clicks"][0], links["unsubscribe"]):
        assert client.get(path).status_code == 404
    assert client.post(links["unsubscribe"]).status_code == 404
    assert _recorded(acme) == before
    assert _subscribed(acme, contact)
    _keys.clear()


def test_another_firms_tokens_find_nothing(client, acme, globex, two_sent):
    row, contact, _ = two_sent["a"]
    before = _recorded(acme)
    for kind, path in (("open", "/t/o/{}.gif"), ("click", "/t/c/{}"), ("unsubscribe", "/t/u/{}")):
        url = "https://example.com/offer" if kind == "click" else ""
        for firm_id in (globex.id, globex.id + 1000, 0, -1):
            token = make_token(kind, firm_id, row.id, url)
            assert client.get(path.format(token)).status_code == 404
            if kind == "unsubscribe":
                assert client.post(path.format(token)).status_code == 404
    assert _recorded(acme) == before and _recorded(globex) == (0, 0)
    assert _subscribed(acme, contact)


def test_contact_as_unsubscribe_token_never_unsubscribes_contact_b(client, acme, two_sent):
    _, contact_a, links_a = two_sent["a"]
    row_b, contact_b, _ = two_sent["b"]
    url = links_a["unsubscribe"]
    # Whatever the request says about B, the signed token names A's message.
    attempts = [
        client.post(url, data={"contact_id": contact_b.id, "email": contact_b.email}),
        client.post(f"{url}?contact_id={contact_b.id}&outbox_id={row_b.id}"),
        client.post(url, json={"contact_id": contact_b.id, "message_id": row_b.message_id}),
        client.post(url, data="List-Unsubscribe=One-Click", content_type="text/plain"),
    ]
    assert all(response.status_code == 200 for response in attempts)
    assert not _subscribed(acme, contact_a)
    assert _subscribed(acme, contact_b)


def test_get_on_the_one_click_url_only_asks_and_post_unsubscribes(client, acme, two_sent):
    _, contact, links = two_sent["a"]
    one_click = links["one_click"]
    assert one_click.startswith("/t/u/")
    before = _recorded(acme)
    for method in ("GET", "HEAD", "GET"):
        response = client.open(one_click, method=method)
        assert response.status_code == 200
    page = client.get(one_click).get_data(as_text=True)
    assert '<form method="post">' in page and "a*@example.com" in page
    assert _subscribed(acme, contact)
    assert _recorded(acme) == before
    # RFC 8058: the mail client's POST, no cookie, no CSRF token.
    done = client.post(
        one_click,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 200
    assert not _subscribed(acme, contact)
    events, _ = _recorded(acme)
    assert events == before[0] + 1
    with firm_context(acme.id):
        kinds = db.session.scalars(select(EventLog.event_type)).all()
    assert kinds.count("email_unsubscribed") == 1, kinds


OFFSITE_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "javascript:alert(1)",
    "http:evil.example",
    "\x00//evil.example",
]


def _stays_here(location: str) -> bool:
    # Judged as a browser would: backslashes are slashes in http(s) URLs.
    normalized = location.replace("\\", "/")
    parts = urlsplit(normalized)
    return not parts.scheme and not parts.netloc and normalized.startswith("/")


def test_a_login_never_redirects_off_site(client, auth, alice):
    from tests.factories import PASSWORD

    for target in OFFSITE_NEXT:
        token = auth.csrf_token()
        response = client.post(
            "/login",
            query_string={"next": target},
            data={"email": alice.email, "password": PASSWORD, "csrf_token": token},
        )
        assert response.status_code == 302, target
        assert _stays_here(response.headers["Location"]), (target, response.headers["Location"])
        auth.logout()

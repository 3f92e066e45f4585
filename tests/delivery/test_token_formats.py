"""Every token the app hands out keeps its format byte for byte: links in
e-mails already sent and cookies already set must keep working. The
expected values were made by the code before the signing moved into
app/automation/delivery/signing.py (same secret, same clock)."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from flask import Flask

from app.automation.delivery import signing, tracking
from app.automation.triggers import double_opt_in, forms, visitor

MOMENT = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


@pytest.fixture
def golden():
    app = Flask("golden")
    app.config.update(SECRET_KEY="golden-secret", BASE_URL="https://x.test")
    with app.app_context(), time_machine.travel(MOMENT, tick=False):
        yield


class _Form:
    form_key = "abc123"


class _Signup:
    firm_id = 7
    id = 42


def test_tracking_tokens_keep_their_format(golden):
    assert tracking.make_token("open", 7, 99) == "WzcsOTld.-QwXk6n6-mRkiGFjzi-pRXlFXIwGhCt3"
    assert (
        tracking.make_token("click", 7, 99, "https://example.com/a?b=1")
        == "WzcsOTksImh0dHBzOi8vZXhhbXBsZS5jb20vYT9iPTEiXQ.gy7Xmy9J6V29zDvb0Kzr9LE_5ch7xd4z"
    )
    assert tracking.make_token("unsubscribe", 7, 99) == "WzcsOTld.BzRPDzEw5pXS02NnsLrj5lyaXJYSbrbD"
    token = tracking.read_token(
        "click", "WzcsOTksImh0dHBzOi8vZXhhbXBsZS5jb20vYT9iPTEiXQ.gy7Xmy9J6V29zDvb0Kzr9LE_5ch7xd4z"
    )
    assert (token.firm_id, token.outbox_id, token.url) == (7, 99, "https://example.com/a?b=1")
    with pytest.raises(tracking.BadToken):  # an open token is no unsubscribe token
        tracking.read_token("unsubscribe", "WzcsOTld.-QwXk6n6-mRkiGFjzi-pRXlFXIwGhCt3")


def test_visitor_cookie_and_public_firm_key_keep_their_format(golden):
    cookie = "7.1234.osOBLkd2tO-cprUwAA07th2d3Tj5cxqbh2kez2iYnYw"
    assert visitor.visitor_cookie_value(7, 1234) == cookie
    assert visitor.read_visitor_cookie(cookie) == (7, 1234)
    assert visitor.read_visitor_cookie(cookie.replace("1234", "1235")) is None
    assert visitor.public_firm_key(7) == "7-f278455da8bac9038267"
    assert visitor.firm_id_from_public_key("7-f278455da8bac9038267") == 7
    assert visitor.firm_id_from_public_key("7-f278455da8bac9038268") is None


def test_form_and_double_opt_in_tokens_keep_their_format(golden):
    assert forms.form_token(_Form) == "eyJmb3JtIjoiYWJjMTIzIn0.aVc1pQ.toY6UP__ebwQDHkG1Xl8eHHFjEM"
    forms.check_token(_Form, "eyJmb3JtIjoiYWJjMTIzIn0.aVc1pQ.toY6UP__ebwQDHkG1Xl8eHHFjEM")
    assert (
        double_opt_in.confirm_url(_Signup)
        == "https://x.test/f/confirm/WzcsNDJd.aVc1pQ.PuYjQ6DKDNkKV9Im4Mmlu4EdIbo"
    )


def test_a_token_of_one_purpose_is_refused_for_another(golden):
    token = signing.timed_token("public-form", {"form": "abc123"})
    assert signing.read_timed_token("public-form", token, max_age=60) == {"form": "abc123"}
    with pytest.raises(signing.InvalidToken):
        signing.read_timed_token("double-opt-in", token, max_age=60)
    compact = signing.compact_token("tracking-open", [1, 2])
    with pytest.raises(signing.InvalidToken):
        signing.read_compact_token("tracking-click", compact)

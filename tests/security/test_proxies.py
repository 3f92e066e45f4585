"""Behind a proxy: with ``TRUSTED_PROXIES`` hops, each client behind the
proxy gets its own rate-limit bucket (not the proxy's one address), and a
client cannot spoof its way out with an ``X-Forwarded-For`` of its own:
only the entries the trusted hops appended are believed. Without it the
header is ignored."""

from __future__ import annotations

import pytest

from app.extensions import limiter

PROXY = {"REMOTE_ADDR": "10.0.0.2"}


@pytest.fixture
def behind(app, database_url, redis_url):
    from app import create_app

    made = []

    def build(hops: int):
        application = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": database_url,
                "REDIS_URL": redis_url,
                "SECRET_KEY": "test-secret",
                "RATELIMIT_ENABLED": True,
                "INLINE_SCHEDULER": False,
                "TRACKING_BAD_TOKEN_LIMIT": "3/minute",
                "TRUSTED_PROXIES": hops,
            }
        )
        made.append(application)
        limiter.reset()
        return application

    try:
        yield build
    finally:
        if made:
            limiter.reset()
        limiter.enabled = bool(app.config.get("RATELIMIT_ENABLED"))


def _clicks(client, forwarded_for: str, count: int) -> list[int]:
    return [
        client.get(
            f"/t/c/junk{n}", environ_base=PROXY, headers={"X-Forwarded-For": forwarded_for}
        ).status_code
        for n in range(count)
    ]


def test_clients_behind_one_proxy_get_their_own_buckets(behind):
    with behind(1).test_client() as client:
        attacker = _clicks(client, "203.0.113.66", 5)
        bystander = _clicks(client, "198.51.100.7", 2)
    assert attacker == [404] * 3 + [429] * 2
    assert bystander == [404, 404]


def test_a_client_cannot_spoof_its_address_past_the_trusted_hops(behind):
    with behind(1).test_client() as client:
        # The proxy appends the real peer; only that last entry counts.
        spoofed = [_clicks(client, f"192.0.2.{n}, 203.0.113.66", 1)[0] for n in range(5)]
    assert spoofed == [404] * 3 + [429] * 2


def test_without_trusted_proxies_the_header_is_ignored(behind):
    application = behind(0)
    with application.test_client() as client:
        rotating = [_clicks(client, f"192.0.2.{n}", 1)[0] for n in range(5)]
        with application.test_request_context(
            "/", environ_base=PROXY, headers={"X-Forwarded-For": "192.0.2.1"}
        ):
            from flask import request

            assert request.remote_addr == "10.0.0.2"
    assert rotating == [404] * 3 + [429] * 2


def test_the_trusted_hop_also_gives_the_scheme_and_host(behind):
    application = behind(1)
    environ = application.test_request_context(
        "/",
        environ_base=PROXY,
        headers={
            "X-Forwarded-For": "203.0.113.66",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
        },
    ).request.environ
    seen = {}

    def probe(env, start_response):
        seen.update(env)
        start_response("204 No Content", [])
        return [b""]

    from werkzeug.middleware.proxy_fix import ProxyFix

    assert isinstance(application.wsgi_app, ProxyFix)
    application.wsgi_app.app = probe
    application.wsgi_app(dict(environ), lambda *args: None)
    assert seen["REMOTE_ADDR"] == "203.0.113.66"
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "app.example.com"

"""Public endpoints are rate-limited per address (a separate app with
limits on: the shared test app has them off)."""

from __future__ import annotations

import re

import pytest

from app.automation.triggers.visitor import public_firm_key
from app.extensions import db, limiter
from app.models import Form
from app.tenancy import firm_context


@pytest.fixture
def limited(app, database_url, redis_url):
    from app import create_app

    application = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "test-secret",
            "RATELIMIT_ENABLED": True,
            "INLINE_SCHEDULER": False,
            "PUBLIC_FORM_RATE_LIMIT": "2/minute",
            "SITE_BEACON_RATE_LIMIT": "3/minute",
        }
    )
    try:
        yield application
    finally:
        limiter.reset()
        # The limiter object is shared: put it back as the shared test app
        # configured it (limits off), or later tests would be limited.
        limiter.enabled = bool(app.config.get("RATELIMIT_ENABLED"))


def test_form_posts_are_limited_per_address(limited, acme):
    with firm_context(acme.id):
        form = Form(name="Signup", fields=[{"name": "email", "type": "email", "required": True}])
        db.session.add(form)
        db.session.commit()
        key = form.form_key
    with limited.test_client() as client:
        page = client.get(f"/f/{key}").get_data(as_text=True)
        token = re.search(r'name="_form_token" value="([^"]+)"', page).group(1)
        statuses = [
            client.post(
                f"/f/{key}", data={"_form_token": token, "email": f"a{n}@example.com"}
            ).status_code
            for n in range(3)
        ]
    assert statuses == [200, 200, 429]


def test_beacons_are_limited_per_address(limited, acme):
    with limited.app_context():
        body = {"firm": public_firm_key(acme.id), "url": "https://acme.example/"}
    with limited.test_client() as client:
        statuses = [client.post("/t/v", json=body).status_code for _ in range(4)]
    assert statuses == [204, 204, 204, 429]

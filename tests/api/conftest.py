"""API test helpers: a JSON client authenticated as a named user."""

from __future__ import annotations

import pytest


class ApiClient:
    """``api.get(path)`` / ``api.post(path, json)`` with the user's Bearer token."""

    def __init__(self, client, headers: dict):
        self.client = client
        self.headers = headers

    def _call(self, method: str, path: str, json=None, headers=None, **kwargs):
        all_headers = {**self.headers, **(headers or {})}
        return self.client.open(path, method=method, json=json, headers=all_headers, **kwargs)

    def get(self, path, **kwargs):
        return self._call("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self._call("POST", path, json=json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self._call("PATCH", path, json=json, **kwargs)

    def delete(self, path, **kwargs):
        return self._call("DELETE", path, **kwargs)


@pytest.fixture
def session_csrf(client, app):
    """Put a CSRF token in the signed-in client's session, as a page would,
    and return the header carrying it (what templates/base.html sends)."""
    import secrets

    from itsdangerous import URLSafeTimedSerializer

    raw = secrets.token_hex(20)
    with client.session_transaction() as session:
        session["csrf_token"] = raw
    signed = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw)
    return {"X-CSRFToken": signed}


@pytest.fixture
def api_as(client, token_for):
    """``api_as(alice)`` -> an ApiClient using alice's token."""

    def make(user) -> ApiClient:
        return ApiClient(client, token_for(user))

    return make


@pytest.fixture
def api(api_as, alice):
    return api_as(alice)

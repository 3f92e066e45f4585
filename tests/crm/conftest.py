"""Fixtures of the CRM tests: the API as alice, a signed-in page client."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiClient


@pytest.fixture
def api(client, token_for, alice):
    return ApiClient(client, token_for(alice))


@pytest.fixture
def signed_in(auth):
    def login(user) -> str:
        assert auth.login(user).status_code == 302
        return auth.csrf_token("/automation")

    return login

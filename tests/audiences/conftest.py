"""Fixtures of the audience tests: a signed-in page client."""

from __future__ import annotations

import pytest


@pytest.fixture
def signed_in(auth):
    def login(user) -> str:
        assert auth.login(user).status_code == 302
        return auth.csrf_token("/automation")

    return login

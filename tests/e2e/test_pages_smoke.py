"""The live server and Chromium fixtures work: sign in and see the app."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_it_signs_in_and_shows_the_workflow_list(logged_in_page, alice, screenshot):
    page = logged_in_page(alice)
    assert page.get_by_role("heading", name="Workflows", exact=True).is_visible()
    assert page.get_by_role("navigation", name="Main").is_visible()
    screenshot(page, "smoke-workflow-list")
    assert page.js_errors == []

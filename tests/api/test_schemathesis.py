"""Property-based run over /api/openapi.json, in-process (WSGI).

Every operation gets a few generated requests as alice (valid and invalid
bodies and parameters); no answer may be a 5xx, and every answer must match
the status codes, content type and schema the document declares. Path ids
point at real objects of alice's firm, so the success paths run too.
Bounded: schemathesis' coverage phase (every boundary and invalid value the
schema implies, ~3,500 requests in all) plus 3 fuzzed examples per
operation, derandomized; about 45 s on SQLite.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.world import make_world

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _document() -> dict:
    """The very document /api/openapi.json serves (built from the models
    without an app, so operations can be parametrized at collection)."""
    from app.api import load_endpoints
    from app.api.openapi import openapi_document

    load_endpoints()
    return openapi_document()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def lazy_world(acme):
    """One of everything, built on first use: hypothesis runs the examples
    of one operation within one test, so they share it."""
    cache: dict = {}

    def get() -> dict:
        if "ids" not in cache:
            cache["ids"] = make_world(acme)
        return cache["ids"]

    return get


@schema.parametrize()
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_documented_promises(app, case, lazy_world, alice, token_for):
    headers = token_for(alice)
    if case.path_parameters:
        world = lazy_world()
        for name in case.path_parameters:
            if name in world:
                case.path_parameters[name] = world[name]
    case.call_and_validate(app=app, headers=headers, checks=CHECKS)


def test_the_served_document_is_the_tested_one(client):
    assert client.get("/api/openapi.json").json == _document()

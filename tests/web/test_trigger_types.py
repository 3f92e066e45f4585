"""A trigger type is one registration: registering one (in this module
only) puts it in the triggers panel, validation, the event bus and the
API's enums; every registered type has all of its parts; an event type
without a filter is an error, never "match all"."""

from __future__ import annotations

import pytest

from app.api.openapi import openapi_document
from app.automation.graph.validation import validate_definition
from app.automation.lifecycle.publishing import activate_workflow
from app.automation.triggers.bus import emit
from app.automation.triggers.registry import (
    TRIGGER_TYPES,
    NoEventFilter,
    TriggerConfig,
    TriggerType,
    UnknownTriggerType,
    event_matches,
    register,
    unregister,
)
from app.extensions import db
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow
from tests.triggers.conftest import executions_of
from tests.web.conftest import HX


class ColourConfig(TriggerConfig):
    colour: str | None = None


def _same_colour(config: dict, data: dict) -> bool:
    return not config.get("colour") or config["colour"] == data.get("colour")


PAINTED = TriggerType(
    "test_painted",
    "Contact painted",
    "CRM",
    ColourConfig,
    "A contact is painted a colour.",
    filter=_same_colour,
)


@pytest.fixture
def painted():
    register(PAINTED)
    openapi_document.cache_clear()
    yield PAINTED
    unregister(PAINTED.key)
    openapi_document.cache_clear()


def _live(firm, user, configuration):
    workflow = make_workflow(
        firm,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "test_painted", "configuration": configuration}],
    )
    with firm_context(firm.id):
        activate_workflow(workflow, user)
        db.session.commit()
    return workflow


def test_a_registered_trigger_type_is_in_the_panel(client, signed_in, alice, acme, painted):
    workflow = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    token = signed_in(alice)
    base = f"/automation/builder/{workflow.id}/triggers"
    panel = client.get(base, headers=HX).get_data(as_text=True)
    assert '<option value="test_painted"' in panel and "Contact painted" in panel
    form = client.get(f"{base}?trigger_type=test_painted", headers=HX).get_data(as_text=True)
    assert 'name="colour"' in form
    added = client.post(
        base,
        data={"csrf_token": token, "trigger_type": "test_painted", "colour": "red"},
        headers=HX,
    )
    assert added.status_code == 200, added.get_data(as_text=True)
    db.session.expire_all()
    with firm_context(acme.id):
        (trigger,) = db.session.get(type(workflow), workflow.id).triggers
        assert (trigger.trigger_type, trigger.configuration) == ("test_painted", {"colour": "red"})


def test_validation_reads_the_trigger_type(painted):
    definition = {
        "nodes": [{"node_id": "a", "node_type": "add_tag", "configuration": {"tag": "x"}}],
        "edges": [],
        "triggers": [{"trigger_type": "test_painted", "configuration": {"colour": "red"}}],
    }
    assert validate_definition(definition) == []
    definition["triggers"][0]["configuration"] = {"shade": "red"}
    (problem,) = validate_definition(definition)
    assert "trigger test_painted: shade" in problem["message"]


def test_its_events_start_the_workflow(acme, alice, painted):
    workflow = _live(acme, alice, {"colour": "red"})
    contact = make_contact(acme)
    assert emit(acme.id, "test_painted", contact.id, {"colour": "blue"}) == []
    assert len(emit(acme.id, "test_painted", contact.id, {"colour": "red"})) == 1
    (execution,) = executions_of(acme, workflow)
    assert execution.trigger_type == "test_painted"


def test_the_api_enums_list_the_trigger_type(client, painted):
    schemas = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    enums = [
        prop["enum"]
        for schema in schemas.values()
        for name, prop in (schema.get("properties") or {}).items()
        if name == "trigger_type" and "enum" in prop
    ]
    assert enums and all("test_painted" in enum for enum in enums)


def test_every_registered_trigger_type_is_complete():
    assert "test_painted" not in TRIGGER_TYPES
    for kind in TRIGGER_TYPES.values():
        where = kind.key
        assert kind.label and kind.description, where
        assert kind.family in TriggerType.families, where
        assert issubclass(kind.Config, TriggerConfig), where
        assert {"match", "rules"} <= set(kind.Config.model_fields), where
        if kind.driven_by == "event":
            assert callable(kind.filter), where
            assert isinstance(event_matches(kind.key, {}, {}), bool), where
        elif kind.driven_by == "schedule":
            assert callable(kind.runner) and kind.filter is None, where
        else:
            assert kind.driven_by == "direct" and kind.filter is kind.runner is None, where


def test_a_type_without_a_filter_is_an_error_not_match_all():
    with pytest.raises(UnknownTriggerType):
        event_matches("no_such_type", {}, {"anything": 1})
    for key in ("manual", "api", "date_reached"):
        with pytest.raises(NoEventFilter):
            event_matches(key, {}, {})
    with pytest.raises(ValueError, match="iff event-driven"):
        TriggerType("test_x", "X", "CRM", TriggerConfig, "x")
    with pytest.raises(ValueError, match="iff scheduled"):
        TriggerType("test_x", "X", "Date", TriggerConfig, "x", driven_by="schedule")

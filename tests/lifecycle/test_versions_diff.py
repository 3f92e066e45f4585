"""The diff between two definitions names what was added, removed, changed."""

from __future__ import annotations

import copy

from app.automation.lifecycle.versions import diff_definitions, node_status_map

BASE = {
    "name": "Nurture",
    "description": "",
    "settings": {"allow_reentry": False, "exit_on_goal": True, "enroll_existing": False},
    "nodes": [
        {
            "node_id": "send",
            "node_type": "send_email",
            "label": "Welcome",
            "position_x": 0.0,
            "position_y": 0.0,
            "configuration": {"subject": "Hi", "body_text": "Hello"},
        },
        {
            "node_id": "wait",
            "node_type": "wait_time",
            "label": "",
            "position_x": 0.0,
            "position_y": 100.0,
            "configuration": {"wait_duration_hours": 24},
        },
        {
            "node_id": "tag",
            "node_type": "add_tag",
            "label": "",
            "position_x": 0.0,
            "position_y": 200.0,
            "configuration": {"tag": "a"},
        },
    ],
    "edges": [
        {"source": "send", "target": "wait", "condition_type": None, "condition_config": {}},
        {"source": "wait", "target": "tag", "condition_type": None, "condition_config": {}},
    ],
    "triggers": [{"trigger_type": "manual", "configuration": {}, "is_active": True}],
}


def test_identical_definitions_have_an_empty_diff():
    diff = diff_definitions(BASE, copy.deepcopy(BASE))
    assert diff["is_empty"]


def test_it_names_added_removed_and_changed_nodes_and_edges():
    new = copy.deepcopy(BASE)
    new["nodes"][0]["configuration"]["subject"] = "Hello there"
    new["nodes"][0]["label"] = "Welcome mail"
    new["nodes"] = [n for n in new["nodes"] if n["node_id"] != "tag"]
    new["nodes"].append(
        {"node_id": "sms", "node_type": "send_sms", "label": "", "configuration": {"body": "Hi"}}
    )
    new["edges"][1] = {"source": "wait", "target": "sms", "condition_type": None}
    diff = diff_definitions(BASE, new)
    assert [n["node_id"] for n in diff["nodes"]["added"]] == ["sms"]
    assert [n["node_id"] for n in diff["nodes"]["removed"]] == ["tag"]
    (changed,) = diff["nodes"]["changed"]
    assert changed["node_id"] == "send"
    assert changed["fields"] == [{"field": "subject", "old": "Hi", "new": "Hello there"}]
    assert changed["attributes"] == [{"field": "label", "old": "Welcome", "new": "Welcome mail"}]
    assert [(e["source"], e["target"]) for e in diff["edges"]["added"]] == [("wait", "sms")]
    assert [(e["source"], e["target"]) for e in diff["edges"]["removed"]] == [("wait", "tag")]
    assert node_status_map(diff) == {"sms": "added", "tag": "removed", "send": "changed"}
    assert not diff["is_empty"]


def test_a_dragged_node_is_moved_not_changed():
    new = copy.deepcopy(BASE)
    new["nodes"][1]["position_x"] = 300.0
    diff = diff_definitions(BASE, new)
    assert diff["nodes"]["changed"] == [] and diff["nodes"]["moved"] == ["wait"]


def test_a_changed_type_and_removed_config_field_are_reported():
    new = copy.deepcopy(BASE)
    new["nodes"][1]["node_type"] = "wait_condition"
    new["nodes"][1]["configuration"] = {"timeout_hours": 5, "rules": [{"tag": "x", "op": "has"}]}
    (changed,) = diff_definitions(BASE, new)["nodes"]["changed"]
    assert changed["attributes"][0] == {
        "field": "node_type",
        "old": "wait_time",
        "new": "wait_condition",
    }
    assert {f["field"] for f in changed["fields"]} == {
        "wait_duration_hours",
        "timeout_hours",
        "rules",
    }


def test_trigger_and_setting_changes_are_reported():
    new = copy.deepcopy(BASE)
    new["settings"]["allow_reentry"] = True
    new["triggers"] = [
        {"trigger_type": "manual", "configuration": {}, "is_active": False},
        {"trigger_type": "contact_tag_added", "configuration": {"tag": "vip"}, "is_active": True},
    ]
    diff = diff_definitions(BASE, new)
    assert diff["settings"] == [{"field": "allow_reentry", "old": False, "new": True}]
    assert diff["triggers"]["changed"] == [
        {
            "trigger_type": "manual",
            "fields": [{"field": "is_active", "old": True, "new": False}],
        }
    ]
    assert [t["trigger_type"] for t in diff["triggers"]["added"]] == ["contact_tag_added"]
    assert diff["triggers"]["removed"] == []


def test_a_variant_edge_differs_by_its_variant():
    old = copy.deepcopy(BASE)
    old["edges"].append(
        {
            "source": "send",
            "target": "tag",
            "condition_type": "variant",
            "condition_config": {"variant": "A"},
        }
    )
    new = copy.deepcopy(old)
    new["edges"][-1]["condition_config"] = {"variant": "B"}
    diff = diff_definitions(old, new)
    assert len(diff["edges"]["added"]) == len(diff["edges"]["removed"]) == 1

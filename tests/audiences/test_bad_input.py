"""Bad input on the audience API and pages: 400/422 naming the field,
never a 500; references to unknown, other firms' or cyclic audiences are
refused (docs/CONTRACT.md "Audiences")."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiClient


@pytest.fixture
def api(client, token_for, alice):
    return ApiClient(client, token_for(alice))


@pytest.fixture
def charlie_api(client, token_for, charlie):
    return ApiClient(client, token_for(charlie))


def _create(api, name, rules):
    answer = api.post("/api/v1/audiences/", {"name": name, "rules": rules})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def _fields(answer) -> dict:
    return answer.get_json()["error"].get("fields") or {}


def test_malformed_json_and_wrong_types_name_the_field(api):
    raw = api.client.post(
        "/api/v1/audiences/",
        data="{not json",
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert raw.status_code == 400, raw.get_data(as_text=True)
    for body, field in (
        ({"name": 5, "rules": []}, "name"),
        ({"name": "X", "match": "some", "rules": []}, "match"),
        ({"name": "X", "rules": {"tag": "vip"}}, "rules"),
        ({"name": "X", "rules": [5]}, "rules[0]"),
        ({"name": "X", "rules": [{"audience": "abc"}]}, "rules[0].audience"),
        ({"name": "X", "rules": [{"tag": ""}]}, "rules[0].tag"),
        ({"name": "X", "rules": [{"list": 1, "extra": True}]}, "rules[0].extra"),
    ):
        answer = api.post("/api/v1/audiences/", body)
        assert answer.status_code in (400, 422), (body, answer.get_data(as_text=True))
        assert field in _fields(answer), (body, answer.get_json())
    audience = _create(api, "Fine", [])
    answer = api.post(f"/api/v1/audiences/{audience}/enroll/", {"workflow": "abc"})
    assert answer.status_code in (400, 422) and "workflow" in _fields(answer)
    answer = api.patch(f"/api/v1/audiences/{audience}/", {"rules": "x"})
    assert answer.status_code in (400, 422) and "rules" in _fields(answer)


def test_an_audience_cannot_contain_itself_or_a_cycle(api):
    first = _create(api, "First", [])
    second = _create(api, "Second", [{"audience": first}])
    third = _create(api, "Third", [{"rules": [{"audience": second, "op": "not_in"}]}])
    itself = api.patch(f"/api/v1/audiences/{first}/", {"rules": [{"audience": first}]})
    assert itself.status_code == 422 and "rules[0].audience" in _fields(itself)
    cycle = api.patch(f"/api/v1/audiences/{first}/", {"rules": [{"tag": "x"}, {"audience": third}]})
    assert cycle.status_code == 422, cycle.get_json()
    assert "rules[1].audience" in _fields(cycle), cycle.get_json()
    assert api.get(f"/api/v1/audiences/{first}/").get_json()["rules"] == []
    assert api.get(f"/api/v1/audiences/{third}/count/").status_code == 200


def test_another_firms_audience_is_unknown(api, charlie_api):
    theirs = _create(charlie_api, "Theirs", [])
    answer = api.post("/api/v1/audiences/", {"name": "Mine", "rules": [{"audience": theirs}]})
    assert answer.status_code == 422
    assert _fields(answer)["rules[0].audience"] == ["no such audience"]


def test_rules_too_deep_or_too_many_are_refused(api):
    deep: dict = {"tag": "vip"}
    for _ in range(20):
        deep = {"match": "all", "rules": [deep]}
    answer = api.post("/api/v1/audiences/", {"name": "Deep", "rules": [deep]})
    assert answer.status_code in (400, 422), answer.get_data(as_text=True)[:300]
    assert "rules" in " ".join(_fields(answer)), answer.get_json()
    many = [{"tag": f"t{i}"} for i in range(5000)]
    answer = api.post("/api/v1/audiences/", {"name": "Many", "rules": many})
    assert answer.status_code in (400, 422), answer.get_data(as_text=True)[:300]
    assert "rules" in _fields(answer), answer.get_json()


@pytest.mark.parametrize(
    "query",
    ["limit=abc", "limit=-1", "limit=0", "limit=100000", "cursor=junk", "cursor=", "cursor=%00"],
)
def test_limit_and_cursor_junk_is_a_400(api, query):
    audience = _create(api, "All", [])
    for path in ("/api/v1/audiences/", f"/api/v1/audiences/{audience}/contacts/"):
        answer = api.get(f"{path}?{query}")
        assert answer.status_code in (200, 400, 422), (path, query, answer.status_code)
        if answer.status_code != 200:
            name = query.split("=")[0]
            assert name in _fields(answer), answer.get_json()


def test_unknown_enrollment_and_audience_ids_are_404(api):
    audience = _create(api, "All", [])
    assert api.get(f"/api/v1/audiences/{audience}/enroll/999999/").status_code == 404
    assert api.get("/api/v1/audiences/999999/count/").status_code == 404
    assert api.patch("/api/v1/audiences/999999/", {"name": "x"}).status_code == 404


def test_triggers_and_steps_refuse_an_audience_that_is_not_the_firms(api, charlie_api, acme):
    from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_workflow

    draft = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    mine = _create(api, "Mine", [])
    theirs = _create(charlie_api, "Theirs", [])
    triggers = "/api/v1/automation/triggers/"
    for kind in ("segment_entered", "segment_left"):
        for audience in (theirs, 999999):
            answer = api.post(
                triggers,
                {
                    "workflow": draft.id,
                    "trigger_type": kind,
                    "configuration": {"audience": audience},
                },
            )
            assert answer.status_code == 422, answer.get_json()
            assert _fields(answer) == {"configuration.audience": ["no such audience"]}
        saved = api.post(
            triggers,
            {"workflow": draft.id, "trigger_type": kind, "configuration": {"audience": mine}},
        )
        assert saved.status_code == 201, saved.get_json()
    filtered = api.post(
        triggers,
        {
            "workflow": draft.id,
            "trigger_type": "contact_tag_added",
            "configuration": {"tag": "vip", "rules": [{"audience": theirs}]},
        },
    )
    assert filtered.status_code == 422
    assert "configuration.rules.0.audience" in _fields(filtered), filtered.get_json()
    step = {
        "workflow": draft.id,
        "node_id": "gate",
        "node_type": "condition",
        "configuration": {"rules": [{"tag": "x"}, {"rules": [{"audience": theirs}]}]},
    }
    answer = api.post("/api/v1/automation/nodes/", step)
    assert answer.status_code == 422, answer.get_json()
    assert "configuration.rules.1.rules.0.audience" in _fields(answer), answer.get_json()
    step["configuration"] = {"rules": [{"audience": mine, "op": "not_in"}]}
    assert api.post("/api/v1/automation/nodes/", step).status_code == 201


def test_the_editor_shows_a_cycle_and_junk_on_the_rule_row(client, auth, alice, api):
    assert auth.login(alice).status_code == 302
    csrf = auth.csrf_token("/automation")
    first = _create(api, "First", [])
    second = _create(api, "Second", [{"audience": first}])
    for rule, message in (
        ({"rules-0-kind": "audience", "rules-0-audience": str(second)}, b"a cycle"),
        ({"rules-0-kind": "audience", "rules-0-audience": "99999"}, b"no such audience"),
        ({"rules-0-kind": "group", "rules-0-json": "{not json"}, b"field-error"),
        ({"rules-0-kind": "list", "rules-0-list": "abc"}, b"field-error"),
    ):
        answer = client.post(
            f"/audiences/{first}", data={"csrf_token": csrf, "name": "First", **rule}
        )
        assert answer.status_code == 400, (rule, answer.status_code)
        row = answer.get_data().split(b'class="rule-row"', 1)[1].split(b"add-rules", 1)[0]
        assert message in row, (rule, row[:600])
    preview = client.post(
        "/audiences/preview",
        data={"csrf_token": csrf, "rules-0-kind": "group", "rules-0-json": "[[[["},
        headers={"HX-Request": "true"},
    )
    assert preview.status_code == 200 and b"Finish the rules" in preview.data


def test_an_audience_in_use_cannot_be_deleted(api, acme, client, auth, alice):
    from tests.factories import make_workflow

    inner = _create(api, "Inner", [])
    outer = _create(api, "Outer", [{"rules": [{"audience": inner}]}])
    make_workflow(
        acme,
        name="Welcome back",
        triggers=[{"trigger_type": "segment_left", "configuration": {"audience": outer}}],
    )
    answer = api.delete(f"/api/v1/audiences/{inner}/")
    assert answer.status_code == 409, answer.get_json()
    assert "audience “Outer”" in answer.get_json()["error"]["message"]
    answer = api.delete(f"/api/v1/audiences/{outer}/")
    assert answer.status_code == 409
    assert "workflow “Welcome back”" in answer.get_json()["error"]["message"]
    assert auth.login(alice).status_code == 302
    csrf = auth.csrf_token("/automation")
    page = client.post(
        f"/audiences/{inner}/delete", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert page.status_code == 200 and "audience “Outer”" in page.get_data(as_text=True)
    assert api.get(f"/api/v1/audiences/{inner}/").status_code == 200
    assert api.patch(f"/api/v1/audiences/{outer}/", {"rules": []}).status_code == 200
    assert api.delete(f"/api/v1/audiences/{inner}/").status_code == 204


def test_enroll_refuses_another_firms_or_a_draft_workflow(api, acme, globex):
    from tests.factories import make_workflow

    wait = [{"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}]
    theirs = make_workflow(globex, status="active", nodes=wait)
    draft = make_workflow(acme, nodes=wait)
    audience = _create(api, "All", [])
    for workflow in (theirs.id, draft.id, -1, 2**63, True, [1], None):
        answer = api.post(f"/api/v1/audiences/{audience}/enroll/", {"workflow": workflow})
        assert answer.status_code in (400, 422), (workflow, answer.get_data(as_text=True)[:300])
        assert "workflow" in _fields(answer), (workflow, answer.get_json())


@pytest.mark.parametrize(
    "rule",
    [
        {"list": 2**63},
        {"list": 2**40},
        {"topic": 2**63},
        {"audience": 2**63},
        {"field": "contact.score", "op": "gt", "value": 10**30},
        {"field": "contact.custom.n", "op": "gte", "value": 2**70},
        {"event": "email_opened", "within_days": 3650, "node": "x" * 5000},
    ],
)
def test_out_of_range_numbers_in_rules_are_never_a_500(api, rule):
    answer = api.post("/api/v1/audiences/", {"name": "Big", "rules": [rule]})
    assert answer.status_code in (201, 400, 422), answer.get_data(as_text=True)[:300]
    if answer.status_code == 201:
        count = api.get(f"/api/v1/audiences/{answer.get_json()['id']}/count/")
        assert count.status_code == 200, count.get_data(as_text=True)[:300]

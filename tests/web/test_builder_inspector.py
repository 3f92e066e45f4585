"""The node inspector: per-type forms, validation, rule rows, preview."""

from __future__ import annotations

from html.parser import HTMLParser

from werkzeug.datastructures import MultiDict

from app.automation.nodes.registry import get_node_type
from tests.factories import make_contact, make_workflow
from tests.web.conftest import HX
from tests.web.test_builder import reload_workflow, url


def inspector_post(client, token, workflow, node_id, data, **extra):
    return client.post(
        url(workflow, f"/nodes/{node_id}"),
        data={"csrf_token": token, **data},
        headers={**HX, **extra},
    )


def one_node(firm, node_type, configuration, node_id="step"):
    return make_workflow(
        firm,
        nodes=[{"node_id": node_id, "node_type": node_type, "configuration": configuration}],
    )


def test_the_inspector_is_a_fragment_and_a_page(client, signed_in, alice, acme):
    workflow = one_node(acme, "send_email", {"subject": "Hi", "body_text": "Hello"})
    signed_in(alice)
    fragment = client.get(url(workflow, "/nodes/step"), headers=HX).get_data(as_text=True)
    assert 'id="inspector" data-node-id="step"' in fragment
    assert 'name="subject" value="Hi"' in fragment
    assert "<html" not in fragment
    page = client.get(url(workflow, "/nodes/step")).get_data(as_text=True)
    assert "<html" in page and 'id="inspector" data-node-id="step"' in page
    assert client.get(url(workflow, "/nodes/nope"), headers=HX).status_code == 404


def test_there_is_a_form_for_every_node_type(client, signed_in, alice, acme):
    from app.automation.nodes.registry import all_node_types

    signed_in(alice)
    for kind in all_node_types():
        workflow = one_node(acme, kind.key, kind.default_config(), node_id=kind.key)
        response = client.get(url(workflow, f"/nodes/{kind.key}"), headers=HX)
        assert response.status_code == 200, kind.key
        assert "Unknown step type" not in response.get_data(as_text=True)


def test_it_saves_a_valid_email(client, signed_in, alice, acme):
    workflow = one_node(acme, "send_email", {"subject": "Hi", "body_text": "Hello"})
    token = signed_in(alice)
    response = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Send Welcome Email",
            "node_id": "send_welcome_email",
            "subject": "Welcome!",
            "body_text": "Hi {{ contact.first_name }}",
            "body_html": "",
            "from_email": "",
            "max_attempts": "5",
        },
    )
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "graph-changed"
    assert "Saved." in response.get_data(as_text=True)
    node = reload_workflow(workflow).node_by_key("send_welcome_email")
    assert node.label == "Send Welcome Email"
    assert node.configuration == {
        "subject": "Welcome!",
        "body_text": "Hi {{ contact.first_name }}",
        "max_attempts": 5,
    }


def test_a_save_keeps_the_keys_the_form_does_not_show(client, signed_in, alice, acme):
    workflow = one_node(acme, "wait_time", {"wait_duration_hours": 2, "wait_type": "fixed"})
    token = signed_in(alice)
    response = inspector_post(
        client,
        token,
        workflow,
        "step",
        {"label": "Wait", "node_id": "step", "wait_value": "3", "wait_unit": "days"},
    )
    assert response.status_code == 200
    node = reload_workflow(workflow).node_by_key("step")
    # wait_type (set through the API) stays; the duration is the form's.
    assert node.configuration == {"wait_duration_hours": 72, "wait_type": "fixed"}


WINDOW = {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "contact"}


def _window_post(client, token, workflow, node_type, **window):
    content = (
        {"subject": "Hi", "body_text": "Hello"} if node_type == "send_email" else {"body": "Hi"}
    )
    data = MultiDict({"csrf_token": token, "label": "Send", "node_id": "step", **content})
    for key, value in window.items():
        for item in value if isinstance(value, list) else [value]:
            data.add(f"send_window_{key}", item)
    # A MultiDict, not inspector_post's dict: the days are several values.
    return client.post(url(workflow, "/nodes/step"), data=data, headers=HX)


def test_a_step_sets_its_own_window_none_or_the_workflows(client, signed_in, alice, acme):
    token = signed_in(alice)
    for node_type in ("send_email", "send_sms"):
        content = (
            {"subject": "Hi", "body_text": "Hello"} if node_type == "send_email" else {"body": "Hi"}
        )
        workflow = one_node(acme, node_type, {**content, "send_window": WINDOW})
        form = client.get(url(workflow, "/nodes/step"), headers=HX).get_data(as_text=True)
        assert 'name="send_window_mode" value="own" checked' in form
        assert 'name="send_window_days" value="mon" checked' in form
        assert 'name="send_window_days" value="tue">' in form
        assert "A contact in Tokyo gets this between 09:00 and 17:00 Tokyo time, Mon" in form

        own = _window_post(
            client,
            token,
            workflow,
            node_type,
            mode="own",
            days=["sat", "sun"],
            start="10:00",
            end="12:30",
            timezone="Europe/Paris",
        )
        assert own.status_code == 200, own.get_data(as_text=True)
        assert "Every contact gets this between 10:00 and 12:30 Paris time, Sat, Sun." in (
            own.get_data(as_text=True)
        )
        saved = reload_workflow(workflow).node_by_key("step").configuration
        assert saved["send_window"] == {
            "days": ["sat", "sun"],
            "start": "10:00",
            "end": "12:30",
            "timezone": "Europe/Paris",
        }

        none = _window_post(client, token, workflow, node_type, mode="none", days=["mon"])
        assert none.status_code == 200
        saved = reload_workflow(workflow).node_by_key("step").configuration
        assert "send_window" in saved and saved["send_window"] is None
        form = client.get(url(workflow, "/nodes/step"), headers=HX).get_data(as_text=True)
        assert 'name="send_window_mode" value="none" checked' in form
        assert "Sent as soon as it is due, any day, any time." in form

        inherit = _window_post(client, token, workflow, node_type, mode="workflow")
        assert inherit.status_code == 200
        assert "send_window" not in reload_workflow(workflow).node_by_key("step").configuration
        assert "The workflow&#39;s window: Sent as soon as it is due" in (
            inherit.get_data(as_text=True)
        )


def test_a_bad_step_window_is_a_form_error_and_nothing_is_saved(client, signed_in, alice, acme):
    workflow = one_node(acme, "send_sms", {"body": "Hi", "send_window": WINDOW})
    token = signed_in(alice)
    cases = [
        (
            {"start": "17:00", "end": "09:00", "days": ["mon"]},
            "send_window_end",
            "before it starts",
        ),
        (
            {"start": "09:00", "end": "17:00", "days": ["mon"], "timezone": "Mars/Base"},
            "send_window_timezone",
            "is not &#39;contact&#39; or an IANA time zone name",
        ),
        ({"start": "09:00", "end": "17:00"}, "send_window_days", "at least one day"),
        ({"start": "9am", "end": "17:00", "days": ["mon"]}, "send_window_start", "HH:MM"),
    ]
    for window, field, message in cases:
        response = _window_post(client, token, workflow, "send_sms", mode="own", **window)
        assert response.status_code == 422, field
        body = response.get_data(as_text=True)
        assert "Not saved" in body
        assert f"{field}: " in body and message in body, (field, body.split("Not saved")[-1][:400])
        assert f'id="err-{field}"' in body
        # What was typed is shown again.
        assert f'value="{window["start"]}"' in body
        assert reload_workflow(workflow).node_by_key("step").configuration == {
            "body": "Hi",
            "send_window": WINDOW,
        }
    odd = _window_post(client, token, workflow, "send_sms", mode="sometimes")
    assert odd.status_code == 422
    assert "send_window_mode: " in odd.get_data(as_text=True)


def test_invalid_input_is_shown_and_not_saved(client, signed_in, alice, acme):
    workflow = one_node(acme, "send_email", {"subject": "Hi", "body_text": "Hello"})
    token = signed_in(alice)
    response = inspector_post(
        client,
        token,
        workflow,
        "step",
        {"label": "Mail", "subject": "  ", "body_text": "Hi {{ contact.first_name"},
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Not saved" in body
    assert "subject: required" in body
    # The field says it is invalid and points at its message.
    assert 'aria-invalid="true" aria-describedby="err-subject"' in body
    assert 'id="err-subject"' in body
    assert "body_text: syntax error on line 1" in body
    # What was typed is shown again.
    assert "Hi {{ contact.first_name</textarea>" in body
    sender = inspector_post(
        client,
        token,
        workflow,
        "step",
        {"label": "Mail", "subject": "S", "body_text": "B", "from_email": "nope"},
    )
    assert sender.status_code == 422
    assert 'value="nope"' in sender.get_data(as_text=True)
    assert "must be an e-mail address, optionally with a display name" in sender.get_data(
        as_text=True
    )
    assert reload_workflow(workflow).node_by_key("step").configuration["subject"] == "Hi"


def test_a_taken_step_id_is_refused(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "a", "node_type": "add_tag", "configuration": {"tag": "x"}},
            {"node_id": "b", "node_type": "add_tag", "configuration": {"tag": "y"}},
        ],
    )
    token = signed_in(alice)
    response = inspector_post(
        client, token, workflow, "b", {"label": "B", "node_id": "a", "tag": "z"}
    )
    assert response.status_code == 422
    assert "already used in this workflow" in response.get_data(as_text=True)
    bad = inspector_post(
        client, token, workflow, "b", {"label": "B", "node_id": "Not OK!", "tag": "z"}
    )
    assert bad.status_code == 422
    assert reload_workflow(workflow).node_by_key("b").configuration == {"tag": "y"}


def test_wait_durations_are_typed_in_minutes_hours_or_days(client, signed_in, alice, acme):
    workflow = one_node(acme, "wait_time", {"wait_duration_hours": 24})
    token = signed_in(alice)
    response = inspector_post(
        client,
        token,
        workflow,
        "step",
        {"label": "Wait 2 Days", "wait_value": "2", "wait_unit": "days"},
    )
    assert response.status_code == 200
    assert reload_workflow(workflow).node_by_key("step").configuration == {
        "wait_duration_hours": 48
    }
    form = client.get(url(workflow, "/nodes/step"), headers=HX).get_data(as_text=True)
    assert 'name="wait_value" min="0" step="any"\n           value="2"' in form
    assert '<option value="days" selected>' in form
    inspector_post(
        client, token, workflow, "step", {"label": "W", "wait_value": "90", "wait_unit": "minutes"}
    )
    assert reload_workflow(workflow).node_by_key("step").configuration == {
        "wait_duration_hours": 1.5
    }
    bad = inspector_post(
        client, token, workflow, "step", {"label": "W", "wait_value": "soon", "wait_unit": "days"}
    )
    assert bad.status_code == 422
    assert "must be a number" in bad.get_data(as_text=True)


def test_rule_rows_are_added_and_removed_without_saving(client, signed_in, alice, acme):
    workflow = one_node(acme, "condition", {"match": "all", "rules": [{"tag": "vip", "op": "has"}]})
    token = signed_in(alice)
    added = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Check",
            "match": "any",
            "rules-0-kind": "tag",
            "rules-0-op": "has",
            "rules-0-tag": "vip",
            "_action": "add_rule:field",
        },
    )
    body = added.get_data(as_text=True)
    assert added.status_code == 200
    assert 'name="rules-1-field"' in body
    assert reload_workflow(workflow).node_by_key("step").configuration["match"] == "all"
    removed = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Check",
            "rules-0-kind": "tag",
            "rules-0-tag": "vip",
            "rules-1-kind": "field",
            "_action": "remove_rule:0",
        },
    )
    body = removed.get_data(as_text=True)
    assert 'name="rules-0-field"' in body and 'name="rules-1-field"' not in body


def test_it_saves_rules_of_every_kind(client, signed_in, alice, acme):
    workflow = one_node(acme, "condition", {"rules": []})
    token = signed_in(alice)
    response = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Hot lead?",
            "match": "any",
            "rules-0-kind": "field",
            "rules-0-field": "contact.score",
            "rules-0-op": "gte",
            "rules-0-value": "80",
            "rules-1-kind": "tag",
            "rules-1-op": "has_not",
            "rules-1-tag": "customer",
            "rules-2-kind": "event",
            "rules-2-event": "email_opened",
            "rules-2-node": "",
            "rules-2-op": "happened",
            "rules-3-kind": "field",
            "rules-3-field": "contact.custom.plan",
            "rules-3-op": "in",
            "rules-3-value": "pro, team",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert reload_workflow(workflow).node_by_key("step").configuration == {
        "match": "any",
        "rules": [
            {"field": "contact.score", "op": "gte", "value": 80},
            {"tag": "customer", "op": "has_not"},
            {"event": "email_opened", "op": "happened"},
            {"field": "contact.custom.plan", "op": "in", "value": ["pro", "team"]},
        ],
    }
    bad = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "X",
            "rules-0-kind": "field",
            "rules-0-field": "score",
            "rules-0-op": "eq",
            "rules-0-value": "1",
        },
    )
    assert bad.status_code == 422
    assert "must start with contact." in bad.get_data(as_text=True)


def test_split_weights_must_add_up_to_100(client, signed_in, alice, acme):
    workflow = one_node(
        acme, "split", {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]}
    )
    token = signed_in(alice)
    data = {
        "label": "A/B",
        "variants-0-name": "A",
        "variants-0-weight": "70",
        "variants-1-name": "B",
        "variants-1-weight": "20",
    }
    bad = inspector_post(client, token, workflow, "step", data)
    assert bad.status_code == 422
    assert "weights must add up to 100" in bad.get_data(as_text=True)
    assert "Total: 90% of 100%" in bad.get_data(as_text=True)
    data["variants-1-weight"] = "30"
    assert inspector_post(client, token, workflow, "step", data).status_code == 200
    assert reload_workflow(workflow).node_by_key("step").configuration == {
        "variants": [{"name": "A", "weight": 70}, {"name": "B", "weight": 30}]
    }


def test_webhook_urls_are_checked_at_save(client, signed_in, alice, acme):
    workflow = one_node(acme, "webhook", {"url": "http://93.184.216.34/hook"})
    token = signed_in(alice)
    bad = inspector_post(
        client,
        token,
        workflow,
        "step",
        {"label": "Hook", "url": "http://127.0.0.1:8080/x", "method": "POST"},
    )
    assert bad.status_code == 422
    assert (
        reload_workflow(workflow).node_by_key("step").configuration["url"]
        == "http://93.184.216.34/hook"
    )
    payload = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Hook",
            "url": "http://93.184.216.34/h",
            "method": "POST",
            "payload": "{not json",
        },
    )
    assert payload.status_code == 422
    assert "not valid JSON" in payload.get_data(as_text=True)
    good = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Hook",
            "url": "http://93.184.216.34/h",
            "method": "PUT",
            "headers-0-key": "X-Source",
            "headers-0-value": "crm",
            "payload": '{"who": "{{ contact.email }}"}',
        },
    )
    assert good.status_code == 200, good.get_data(as_text=True)
    config = reload_workflow(workflow).node_by_key("step").configuration
    assert config["headers"] == {"X-Source": "crm"}
    assert config["payload"] == {"who": "{{ contact.email }}"}


def test_the_preview_renders_for_a_contact_and_escapes_html(client, signed_in, alice, acme):
    workflow = one_node(acme, "send_email", {"subject": "Hi", "body_text": "Hello"})
    contact = make_contact(acme, first_name="<b>Bo</b>", email="bo@example.com")
    token = signed_in(alice)
    response = client.post(
        url(workflow, "/nodes/step/preview"),
        data={
            "csrf_token": token,
            "subject": "Hi {{ contact.first_name }}",
            "body_html": "<p>{{ contact.first_name }}</p>",
            "preview_contact": str(contact.id),
        },
        headers=HX,
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Hi &lt;b&gt;Bo&lt;/b&gt;" in body
    # The HTML body goes into a sandboxed frame, escaped into its srcdoc.
    assert '<iframe class="preview-frame" sandbox' in body
    assert "<p>" not in body.split("srcdoc=")[1][:40]
    sample = client.post(
        url(workflow, "/nodes/step/preview"),
        data={"csrf_token": token, "subject": "Hi {{ contact.first_name }}"},
        headers=HX,
    )
    assert "Hi Ada" in sample.get_data(as_text=True)
    broken = client.post(
        url(workflow, "/nodes/step/preview"),
        data={"csrf_token": token, "subject": "{{ contact.first_name"},
        headers=HX,
    )
    assert "Template error" in broken.get_data(as_text=True)


def test_lists_and_users_are_offered_from_the_firm(
    client, signed_in, alice, bob, acme, globex, charlie
):
    from app.extensions import db
    from app.models import ContactList
    from app.tenancy import firm_context

    with firm_context(acme.id):
        db.session.add(ContactList(name="Newsletter"))
        db.session.commit()
    with firm_context(globex.id):
        db.session.add(ContactList(name="Globex secret list"))
        db.session.commit()
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "join", "node_type": "add_to_list", "configuration": {"list": 1}},
            {
                "node_id": "tell",
                "node_type": "internal_notification",
                "configuration": {"message": "hi"},
            },
        ],
    )
    signed_in(alice)
    lists = client.get(url(workflow, "/nodes/join"), headers=HX).get_data(as_text=True)
    assert "Newsletter" in lists and "Globex secret list" not in lists
    users = client.get(url(workflow, "/nodes/tell"), headers=HX).get_data(as_text=True)
    assert "bob@acme.test" in users and "charlie@globex.test" not in users


class _FormReader(HTMLParser):
    """The values a browser would submit for ``#node-form`` (no button)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and name not in ("csrf_token",):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((name, a.get("value") or ""))
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data):
        if self._textarea:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            chosen = [v for v, on in self._options if on] or [v for v, _ in self._options[:1]]
            if chosen:
                self.fields.append((self._select, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.fields.append((self._textarea, self._text))
            self._textarea = None


def test_every_form_saves_back_the_configuration_it_shows(client, signed_in, alice, acme):
    """Opening a step and pressing Save without changes keeps its configuration."""
    from app.automation.nodes.registry import all_node_types

    configs = {kind.key: kind.default_config() for kind in all_node_types()}
    configs["add_to_list"] = configs["remove_from_list"] = {"list": 7}
    configs["condition"] = {
        "match": "any",
        "rules": [
            {"field": "contact.score", "op": "gte", "value": 80},
            {"list": 7, "op": "not_in"},
            {"match": "all", "rules": [{"tag": "a", "op": "has"}]},
        ],
    }
    configs["webhook"] = {
        "url": "http://93.184.216.34/h",
        "method": "PATCH",
        "headers": {"X-A": "1"},
        "payload": {"a": [1, 2]},
        "max_attempts": 4,
    }
    configs["send_email"] = {**configs["send_email"], "send_window": WINDOW}
    configs["send_sms"] = {**configs["send_sms"], "send_window": None}
    token = signed_in(alice)
    for key, config in configs.items():
        workflow = one_node(acme, key, config, node_id=key)
        form = client.get(url(workflow, f"/nodes/{key}"), headers=HX).get_data(as_text=True)
        reader = _FormReader()
        reader.feed(form.split('id="node-form"', 1)[1])
        data = MultiDict(reader.fields)
        data["csrf_token"] = token
        response = client.post(url(workflow, f"/nodes/{key}"), data=data, headers=HX)
        assert response.status_code == 200, (
            key,
            response.get_data(as_text=True).split("Not saved")[-1][:600],
        )
        saved = reload_workflow(workflow).node_by_key(key).configuration
        expected = get_node_type(key).parse_config(config).model_dump(mode="json")
        assert get_node_type(key).parse_config(saved).model_dump(mode="json") == expected, key
        if "send_window" in config:
            # null (no window) is not absent (the workflow's window).
            assert "send_window" in saved and saved["send_window"] == config["send_window"], key


def test_the_opened_which_email_picker_lists_step_names(client, signed_in, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "send_welcome",
                "label": "Welcome mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi", "body_text": "Hi"},
            },
            {
                "node_id": "opened",
                "node_type": "condition",
                "configuration": {
                    "rules": [{"event": "email_opened", "node": "send_welcome", "op": "happened"}]
                },
            },
        ],
        edges=[("send_welcome", "opened")],
    )
    signed_in(alice)
    form = client.get(url(workflow, "/nodes/opened"), headers=HX).get_data(as_text=True)
    assert '<option value="send_welcome" selected>Welcome mail</option>' in form


def test_a_rule_tests_a_topic_subscription(client, signed_in, alice, acme):
    """{"topic": 3, "op": "subscribed"} in the rules form (docs/CONTRACT.md,
    "Sending safely"): a topic picker with the firm's topics by name."""
    from app.extensions import db
    from app.models import Topic
    from app.tenancy import firm_context

    with firm_context(acme.id):
        topic = Topic(name="Newsletter")
        db.session.add(topic)
        db.session.commit()
        topic_id = topic.id
    workflow = one_node(acme, "condition", {"rules": []})
    token = signed_in(alice)
    added = inspector_post(
        client, token, workflow, "step", {"label": "Subscribed?", "_action": "add_rule:topic"}
    )
    body = added.get_data(as_text=True)
    assert 'name="rules-0-topic"' in body and "Newsletter (marketing)" in body
    saved = inspector_post(
        client,
        token,
        workflow,
        "step",
        {
            "label": "Subscribed?",
            "rules-0-kind": "topic",
            "rules-0-op": "not_subscribed",
            "rules-0-topic": str(topic_id),
        },
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    config = reload_workflow(workflow).node_by_key("step").configuration
    assert config["rules"] == [{"topic": topic_id, "op": "not_subscribed"}]
    shown = client.get(url(workflow, "/nodes/step"), headers=HX).get_data(as_text=True)
    assert f'<option value="{topic_id}" selected>Newsletter (marketing)</option>' in shown
    missing = inspector_post(
        client,
        token,
        workflow,
        "step",
        {"label": "Subscribed?", "rules-0-kind": "topic", "rules-0-topic": ""},
    )
    assert missing.status_code == 422 and "choose a topic" in missing.get_data(as_text=True)

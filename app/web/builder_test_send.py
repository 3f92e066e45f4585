""" "Send a test to me" from the e-mail step's inspector: render the form's
current subject and bodies for the chosen (or sample) contact and send them
to the signed-in user (app/automation/delivery/test_send.py)."""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request

from app.auth import login_required_page
from app.automation.delivery.test_send import TestSendRefused, send_test_email
from app.models import Contact
from app.tenancy import scoped_get
from app.web.builder_common import bp, load_node, load_workflow
from app.web.builder_inspector import SAMPLE_CONTACT


@bp.post("/<int:workflow_id>/nodes/<node_id>/send-test")
@login_required_page
def send_test(workflow_id: int, node_id: str):
    workflow = load_workflow(workflow_id)
    node = load_node(workflow, node_id)
    if node.node_type != "send_email":
        return render_template(
            "builder/_send_test.html", error="Only e-mail steps send tests."
        ), 422
    contact: Any = SAMPLE_CONTACT
    raw_id = (request.form.get("preview_contact") or "").strip()
    if raw_id.isdigit():
        contact = scoped_get(Contact, int(raw_id)) or SAMPLE_CONTACT
    values = {
        key: request.form.get(key, "")
        for key in ("subject", "body_html", "body_text", "from_email")
    }
    try:
        result = send_test_email(workflow, node.node_id, values, contact, g.user)
    except TestSendRefused as exc:
        return render_template("builder/_send_test.html", error=str(exc)), 422
    return render_template("builder/_send_test.html", result=result), 200 if result.sent else 422

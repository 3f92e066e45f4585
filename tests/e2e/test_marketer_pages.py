"""The marketer's pages in Chromium, on a workflow the real engine ran:
the funnel follows the A/B branches, completed branches are not drop-offs,
empty charts say "no data yet", the cohort table holds the database's
numbers; the outbox frames the e-mail in a sandbox; "send a test to me"
reaches a real SMTP server; a CSV import with good and bad rows runs
behind a polled progress bar and leaves a downloadable report."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.automation.crm.import_rows import run_import
from app.automation.engine.enrollment import enroll
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import Contact, ContactImport, OutboxMessage, Workflow, WorkflowExecution
from app.tenancy import firm_context
from tests.delivery.conftest import smtp_server  # noqa: F401
from tests.factories import make_contact, make_workflow

pytestmark = pytest.mark.browser

SPLIT_NODES = [
    {
        "node_id": "welcome",
        "label": "Welcome e-mail",
        "node_type": "send_email",
        "configuration": {
            "subject": "Welcome {{ contact.first_name }}",
            "body_html": "<h1>Welcome {{ contact.first_name }}</h1><script>alert(1)</script>",
        },
    },
    {
        "node_id": "split",
        "label": "Offer test",
        "node_type": "split",
        "configuration": {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]},
    },
    {"node_id": "tag_a", "label": "Tag A", "node_type": "add_tag", "configuration": {"tag": "a"}},
    {"node_id": "goal", "label": "Bought", "node_type": "goal", "configuration": {}},
    {"node_id": "tag_b", "label": "Tag B", "node_type": "add_tag", "configuration": {"tag": "b"}},
]
SPLIT_EDGES = [
    ("welcome", "split"),
    ("split", "tag_a", "variant", {"variant": "A"}),
    ("split", "tag_b", "variant", {"variant": "B"}),
    ("tag_a", "goal"),
]


def run_split_workflow(firm, contacts: int = 8) -> Workflow:
    workflow = make_workflow(
        firm,
        name="Offer split",
        nodes=SPLIT_NODES,
        edges=SPLIT_EDGES,
        triggers=[{"trigger_type": "manual"}],
    )
    people = [make_contact(firm, first_name=f"P{n}") for n in range(contacts)]
    with firm_context(firm.id):
        live = db.session.get(Workflow, workflow.id)
        activate_workflow(live)
        db.session.commit()
        enroll(live, [p.id for p in people])
        drain()
    return workflow


def path_table(tab, steps: str) -> list[list[str]]:
    rows = tab.locator(f'table.path-table[data-path="{steps}"] tbody tr')
    return [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]


def test_the_funnel_follows_the_branches_of_a_real_split(
    logged_in_page, live_server, alice, acme, screenshot
):
    workflow = run_split_workflow(acme)
    with firm_context(acme.id):
        took_a = db.session.scalar(
            select(func.count())
            .select_from(WorkflowExecution)
            .where(WorkflowExecution.goal_reached.is_(True))
        )
    took_b = 8 - took_a
    assert 0 < took_a < 8  # 8 contacts at 50/50; the engine's split is seeded per contact
    tab = logged_in_page(alice)
    # plotly.js (3.5 MB) is parsed on the first visit: slow on a loaded machine.
    tab.goto(f"{live_server.url}/automation/analytics/{workflow.id}", timeout=30_000)
    tab.locator("#chart-funnel[data-drawn='true'] .main-svg").first.wait_for(timeout=30_000)
    a = path_table(tab, "welcome split tag_a goal")
    b = path_table(tab, "welcome split tag_b")
    assert [row[1] for row in a] == ["8", "8", str(took_a), str(took_a)]
    assert [row[1] for row in b] == ["8", "8", str(took_b)]
    # B's last step completed the branch: counted as completed, not dropped.
    assert b[2][3] == str(took_b) and b[2][4] == ""
    assert a[3][2] == str(took_a)
    sankey = tab.locator("#chart-sankey").inner_text()
    assert "Completed" in sankey and "Dropped off" not in sankey
    assert tab.locator("#perf-tag_b td").nth(5).inner_text() == str(took_b)  # completed here
    assert tab.locator("#perf-tag_b td").nth(6).inner_text() == "0"  # dropped off here
    # The cohort table holds what the database says about this week's entrants.
    with firm_context(acme.id):
        entered = db.session.scalar(
            select(func.count())
            .select_from(WorkflowExecution)
            .where(WorkflowExecution.workflow_id == workflow.id)
        )
    cells = tab.locator("#cohort-table tbody tr").first.locator("td").all_inner_texts()
    assert cells[1:4] == [str(entered), str(took_a), f"{100 * took_a / entered:.1f}%"]
    screenshot(tab, "marketer-split-analytics")
    assert tab.js_errors == []


def test_charts_without_data_say_no_data_yet(logged_in_page, live_server, alice, acme):
    workflow = make_workflow(
        acme,
        name="Just waiting",
        nodes=[
            {
                "node_id": "wait",
                "node_type": "wait_time",
                "configuration": {"wait_duration_hours": 48},
            }
        ],
        triggers=[{"trigger_type": "manual"}],
    )
    contact = make_contact(acme)
    with firm_context(acme.id):
        live = db.session.get(Workflow, workflow.id)
        activate_workflow(live)
        db.session.commit()
        enroll(live, [contact.id])
        drain()
    tab = logged_in_page(alice)
    # plotly.js (3.5 MB) is parsed on the first visit: slow on a loaded machine.
    tab.goto(f"{live_server.url}/automation/analytics/{workflow.id}", timeout=30_000)
    for name in ("goals", "completion"):
        panel = tab.locator(f"#no-data-{name}")
        assert "No data yet" in panel.inner_text()
        assert tab.locator(f"#chart-{name}").count() == 0
    tab.locator("#chart-executions[data-drawn='true'] .main-svg").first.wait_for(timeout=30_000)
    assert tab.js_errors == []


def test_the_outbox_shows_the_email_in_a_sandboxed_frame(logged_in_page, live_server, alice, acme):
    run_split_workflow(acme, contacts=1)
    with firm_context(acme.id):
        message = db.session.scalars(select(OutboxMessage)).one()
    tab = logged_in_page(alice)
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.goto(f"{live_server.url}/outbox/{message.id}")
    frame = tab.locator("iframe.email-frame")
    assert frame.get_attribute("sandbox") == ""
    heading = tab.frame_locator("iframe.email-frame").get_by_role("heading", name="Welcome P0")
    heading.wait_for()
    assert "<h1>" not in tab.locator("main").inner_text().split("HTML source")[0]
    assert dialogs == []  # the e-mail's script did not run
    assert tab.js_errors == []


def test_send_a_test_to_me_reaches_the_smtp_server(
    logged_in_page,
    live_server,
    alice,
    acme,
    smtp_server,  # noqa: F811
):
    step = {
        **SPLIT_NODES[0],
        "configuration": {
            "subject": "Welcome {{ contact.first_name }}",
            "body_html": "<h1>Welcome {{ contact.first_name }}</h1>",
        },
    }
    workflow = make_workflow(acme, name="Welcome", nodes=[step])
    make_contact(acme, email="hana@example.com", first_name="Hana")
    tab = logged_in_page(alice)
    console: list[str] = []
    tab.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    tab.goto(f"{live_server.url}/automation/builder/{workflow.id}/nodes/welcome")
    # Typing while a preview is on its way queues the next one instead of
    # aborting it (htmx logs every abort as a console error). Previews are
    # held back here, so each keystroke finds one in flight.
    tab.locator(".preview").get_by_text("Welcome").first.wait_for()
    held = []
    tab.route("**/nodes/welcome/preview", lambda route: held.append(route))
    subject = tab.get_by_label("Subject")
    for text in (" and", " back"):
        subject.press_sequentially(text, delay=50)
        tab.wait_for_timeout(600)
    assert held  # a preview was on its way while typing went on
    tab.unroute("**/nodes/welcome/preview")
    for route in held:
        # An aborted request has no route left to continue.
        with contextlib.suppress(Exception):
            route.continue_()
    subject.fill("Welcome {{ contact.first_name }}")
    tab.get_by_label("Preview for contact").select_option(label="hana@example.com")
    tab.get_by_role("button", name="Send a test to me").click()
    tab.get_by_text("Test sent to alice@acme.test").wait_for()
    (message,) = smtp_server.messages
    assert message["To"] == "alice@acme.test"
    assert message["Subject"] == "[Test] Welcome Hana"
    with firm_context(acme.id):
        row = db.session.scalars(select(OutboxMessage)).one()
        assert (row.status, row.contact_id) == ("test", None)
    assert tab.js_errors == [] and console == []


CSV_FILE = (
    "Email,First name,Score,Plan\n"
    "ana@example.com,Ana,10,pro\n"
    "not-an-email,Bad,1,free\n"
    "bo@example.com,Bo,x,free\n"
    "ana@example.com,Ana again,3,pro\n"
    "cy@example.com,Cy,5,free,extra\n"
    "dee@example.com,Dee,7,free\n"
)


def test_a_csv_import_with_good_and_bad_rows(
    app, logged_in_page, live_server, alice, acme, screenshot
):
    tab = logged_in_page(alice)
    tab.goto(f"{live_server.url}/contacts")
    tab.get_by_role("link", name="Import CSV").click()
    tab.get_by_label(re.compile("CSV file")).set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": CSV_FILE.encode()}]
    )
    tab.get_by_role("button", name="Upload").click()
    tab.wait_for_url(re.compile(r".*/contacts/import/\d+$"))
    preview = tab.locator("#import-preview")
    assert "bo@example.com" in preview.inner_text()
    assert tab.get_by_label("Contact field for column Plan").input_value() == "custom.plan"
    screenshot(tab, "marketer-import-mapping")
    tab.get_by_role("button", name="Start import").click()
    with firm_context(acme.id):
        imp = db.session.scalars(select(ContactImport)).one()
    # The in-process runner may have taken it already; else run it here
    # (with Redis and no worker running, this is the worker).
    threading.Thread(target=_run_in_app, args=(app, imp.id), daemon=True).start()
    tab.locator('#import-progress[data-status="done"]').wait_for(timeout=30_000)
    assert tab.locator(".progress").get_attribute("aria-valuenow") == "100"
    counts = tab.locator("#import-counts").inner_text()
    assert "6 of 6 rows · 2 created · 0 updated · 4 bad" in counts
    lines = tab.locator("#import-errors tbody tr td:first-child").all_inner_texts()
    assert lines == ["3", "4", "5", "6"]
    with tab.expect_download() as download:
        tab.get_by_role("link", name="Download the report (CSV)").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    report = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in report[1:]] == ["3", "4", "5", "6"]
    assert "duplicate" in report[3][3] and "unknown column" in report[4][3]
    with firm_context(acme.id):
        emails = set(db.session.scalars(select(Contact.email)))
    assert emails == {"ana@example.com", "dee@example.com"}
    screenshot(tab, "marketer-import-done")
    assert tab.js_errors == []


def _run_in_app(app, import_id: int) -> None:
    with app.app_context():
        run_import(import_id)

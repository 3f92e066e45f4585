"""The suppression list page: add with a note, search, remove with an audit
entry, CSV import (all or nothing) and export."""

from __future__ import annotations

import io

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Suppression
from app.tenancy import firm_context
from tests.web.conftest import HX


def _addresses(firm_id):
    with firm_context(firm_id):
        return sorted(db.session.scalars(select(Suppression.address)))


def test_a_marketer_adds_searches_and_removes(client, signed_in, bob):
    token = signed_in(bob)
    bad = client.post("/suppressions", data={"csrf_token": token, "email": "nope", "note": ""})
    assert bad.status_code == 400 and "not a valid e-mail address" in bad.get_data(as_text=True)
    assert _addresses(bob.firm_id) == []
    added = client.post(
        "/suppressions",
        data={
            "csrf_token": token,
            "email": "Ann@Example.com",
            "reason": "manual",
            "note": "by phone",
        },
    )
    assert added.status_code == 302
    client.post("/suppressions", data={"csrf_token": token, "email": "ben@other.test"})
    page = client.get("/suppressions?q=example", headers=HX).get_data(as_text=True)
    assert "ann@example.com" in page and "ben@other.test" not in page and "by phone" in page
    with firm_context(bob.firm_id):
        entry = db.session.scalars(
            select(Suppression).where(Suppression.address == "ann@example.com")
        ).one()
    assert (
        client.post(f"/suppressions/{entry.id}/delete", data={"csrf_token": token}).status_code
        == 302
    )
    assert _addresses(bob.firm_id) == ["ben@other.test"]
    with firm_context(bob.firm_id):
        removed = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "suppression.removed")
        ).one()
    assert removed.actor == bob.email and removed.data["address"] == "ann@example.com"


def _upload(client, token, text: str):
    return client.post(
        "/suppressions/import",
        data={"csrf_token": token, "file": (io.BytesIO(text.encode()), "list.csv")},
        content_type="multipart/form-data",
    )


def test_a_csv_with_broken_rows_imports_nothing_and_names_them(client, signed_in, alice):
    token = signed_in(alice)
    response = _upload(
        client, token, "email,reason,note\na@x.test,manual,\nbroken,manual,\nc@x.test,angry,\n"
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "row 3: email: not a valid e-mail address" in text
    assert "row 4: reason: must be one of" in text
    assert _addresses(alice.firm_id) == []
    assert _upload(client, token, "name\nAnn\n").status_code == 400


def test_a_good_csv_imports_and_exports_again(client, signed_in, alice):
    token = signed_in(alice)
    rows = "".join(f"user{i}@x.test,complaint,row {i}\n" for i in range(1500))
    response = _upload(client, token, "email,reason,note\n" + rows + "USER1@x.test,manual,\n")
    assert response.status_code == 302
    assert len(_addresses(alice.firm_id)) == 1500
    exported = client.get("/suppressions/export.csv")
    lines = exported.get_data(as_text=True).splitlines()
    assert lines[0] == "email,phone,reason,note,source,created_at"
    assert len(lines) == 1501 and lines[1].startswith("user0@x.test,,complaint,row 0,import,")


def test_the_sending_page_adds_topics_and_domains_and_shows_the_record(client, signed_in, alice):
    token = signed_in(alice)
    assert client.post("/sending/topics", data={"csrf_token": token, "name": ""}).status_code == 400
    client.post(
        "/sending/topics", data={"csrf_token": token, "name": "Newsletter", "kind": "marketing"}
    )
    bad = client.post("/sending/domains", data={"csrf_token": token, "domain": "no such thing"})
    assert bad.status_code == 400 and "must be a domain name" in bad.get_data(as_text=True)
    client.post(
        "/sending/domains",
        data={"csrf_token": token, "domain": "acme.example", "dkim_selector": "s1"},
    )
    client.post(
        "/sending/wording", data={"csrf_token": token, "preference_text": "We write monthly."}
    )
    page = client.get("/sending").get_data(as_text=True)
    assert "Newsletter" in page and "default" in page
    assert "s1._domainkey.acme.example" in page and "v=DKIM1; k=rsa; p=" in page
    assert "PRIVATE KEY" not in page and "We write monthly." in page


def test_sms_numbers_are_added_imported_and_exported(client, signed_in, alice):
    token = signed_in(alice)
    bad = client.post(
        "/suppressions", data={"csrf_token": token, "channel": "sms", "email": "nope"}
    )
    assert bad.status_code == 400 and "not a valid phone number" in bad.get_data(as_text=True)
    added = client.post(
        "/suppressions", data={"csrf_token": token, "channel": "sms", "email": "+44 20 7946 0018"}
    )
    assert added.status_code == 302
    broken = _upload(client, token, "email,phone,reason\n,+1 555 010 2000,manual\n,abc,manual\n")
    assert broken.status_code == 400
    assert "row 3: phone: not a valid phone number" in broken.get_data(as_text=True)
    response = _upload(
        client, token, "email,phone,reason\n,+1 555 010 2000,manual\nann@x.test,,complaint\n"
    )
    assert response.status_code == 302
    assert _addresses(alice.firm_id) == ["+15550102000", "+442079460018", "ann@x.test"]
    page = client.get("/suppressions?channel=sms", headers=HX).get_data(as_text=True)
    assert "+442079460018" in page and "ann@x.test" not in page
    lines = client.get("/suppressions/export.csv").get_data(as_text=True).splitlines()
    assert lines[1].startswith(",+442079460018,manual,")


def _finish(import_id: int, timeout: float = 60):
    """Run the job here unless a worker already claimed it, then wait."""
    import time

    from app.automation.delivery.suppression_import import run_suppression_import
    from app.models import ContactImport

    run_suppression_import(import_id)
    deadline = time.monotonic() + timeout
    while True:
        db.session.expire_all()
        imp = db.session.scalars(
            select(ContactImport)
            .where(ContactImport.id == import_id)
            .execution_options(all_firms=True)
        ).one()
        if imp.finished or time.monotonic() > deadline:
            return imp
        time.sleep(0.1)


def _big(rows: int, bad: dict[int, str] | None = None) -> str:
    lines = ["email,phone,reason,note"]
    for i in range(rows):
        lines.append((bad or {}).get(i) or f"person{i}@big.test,,complaint,from the old system {i}")
    return "\n".join(lines) + "\n"


def test_a_large_file_is_a_job_with_a_progress_bar(client, signed_in, alice):
    token = signed_in(alice)
    text = _big(12_000) + ",+1 555 010 2000,manual,by text\n"
    assert len(text) > 256 * 1024
    response = _upload(client, token, text)
    assert response.status_code == 302
    import_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    imp = _finish(import_id)
    assert imp.status == "done", imp.error
    assert (imp.processed_rows, imp.created_count, imp.error_count) == (12_001, 12_001, 0)
    assert len(_addresses(alice.firm_id)) == 12_001
    page = client.get(f"/suppressions/import/{import_id}").get_data(as_text=True)
    assert 'aria-valuenow="100"' in page and "12001 new on the list" in page
    assert 'data-status="done"' in page and "data-hx-get" not in page
    fragment = client.get(f"/suppressions/import/{import_id}/progress", headers=HX)
    assert "<html" not in fragment.get_data(as_text=True)
    # Not a contact import: the contact import pages do not know it.
    assert client.get(f"/contacts/import/{import_id}").status_code == 404
    with firm_context(alice.firm_id):
        entry = db.session.scalars(
            select(Suppression).where(Suppression.address == "+15550102000")
        ).one()
        assert (entry.channel, entry.source, entry.created_by) == ("sms", "import", alice.email)
        audit = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "suppression.imported")
        ).one()
        assert audit.data["added"] == 12_001 and audit.actor == alice.email


def test_a_large_file_with_bad_rows_imports_nothing_and_reports_them(client, signed_in, alice):
    token = signed_in(alice)
    text = _big(12_000, {5: "not-an-address,,manual,", 9000: "ok@big.test,,furious,"})
    response = _upload(client, token, text)
    import_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    imp = _finish(import_id)
    assert imp.status == "failed" and imp.error_count == 2 and imp.created_count == 0
    assert "nothing was imported" in imp.error
    assert _addresses(alice.firm_id) == []
    page = client.get(f"/suppressions/import/{import_id}").get_data(as_text=True)
    assert "not a valid e-mail address" in page and "must be one of" in page
    report = client.get(f"/suppressions/import/{import_id}/errors.csv").get_data(as_text=True)
    lines = report.splitlines()
    assert lines[0] == "line,email,column,problem,row"
    assert lines[1].startswith("7,not-an-address,email,not a valid e-mail address")
    assert lines[2].startswith('9002,ok@big.test,reason,"must be one of: hard_bounce')


def test_another_firms_import_is_not_found(client, signed_in, alice, charlie):
    token = signed_in(alice)
    response = _upload(client, token, _big(12_000))
    import_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    _finish(import_id)
    client.post("/logout", data={"csrf_token": token})
    signed_in(charlie)
    assert client.get(f"/suppressions/import/{import_id}").status_code == 404
    assert client.get(f"/suppressions/import/{import_id}/errors.csv").status_code == 404


def test_the_queued_import_job_name_resolves_to_the_job():
    from app.automation.delivery import suppression_import
    from app.queue import dotted, resolve

    assert (
        resolve(dotted(suppression_import.run_suppression_import))
        is suppression_import.run_suppression_import
    )

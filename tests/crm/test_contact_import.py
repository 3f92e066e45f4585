"""CSV contact import: upload, mapping, the job, the report of bad rows."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import select

from app.automation.crm import import_files
from app.automation.crm.import_files import guess_mapping, read_rows, store_upload
from app.automation.crm.import_rows import run_import
from app.extensions import db
from app.models import Contact, ContactImport, ContactImportChunk, ContactImportError
from app.tenancy import firm_context
from tests.factories import make_contact

GOOD_AND_BAD = (
    "Email,First name,Last name,Score,Plan,Tags\n"
    'ana@example.com,Ana,Lima,10,pro,"vip,beta"\n'
    "not-an-email,Bad,Row,1,free,\n"
    "bo@example.com,Bo,,x,free,\n"
    "ana@example.com,Ana,Dup,3,pro,\n"
    "cy@example.com,Cy,,5,free,,extra\n"
    "existing@example.com,Ex,,1,free,\n"
    '"dee@example.com","Dee ""D""",,7,"multi\nline",\n'
)


def upload(client, auth, text: str, name: str = "people.csv"):
    token = auth.csrf_token("/contacts/import")
    return client.post(
        "/contacts/import",
        data={"csrf_token": token, "file": (io.BytesIO(text.encode()), name)},
        content_type="multipart/form-data",
    )


def finish(import_id: int, timeout: float = 30) -> ContactImport:
    """Run the job here unless a worker already claimed it, then wait."""
    run_import(import_id)
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


def test_it_guesses_a_field_for_each_column():
    assert guess_mapping(["E-mail", "First Name", "surname", "Plan", "email"]) == [
        "email",
        "first_name",
        "last_name",
        "custom.plan",
        None,
    ]


def test_an_import_of_good_and_bad_rows_end_to_end(client, auth, acme, alice):
    make_contact(acme, email="existing@example.com", first_name="Old")
    auth.login(alice)
    response = upload(client, auth, GOOD_AND_BAD)
    assert response.status_code == 302
    with firm_context(acme.id):
        imp = db.session.scalars(select(ContactImport)).one()
    page = client.get(f"/contacts/import/{imp.id}").get_data(as_text=True)
    assert 'id="import-preview"' in page and "ana@example.com" in page and "Line 3" in page
    assert '<option value="custom.plan" selected>' in page

    token = auth.csrf_token(f"/contacts/import/{imp.id}")
    mapping = {f"column-{i}": t for i, t in enumerate(imp.mapping)}
    response = client.post(
        f"/contacts/import/{imp.id}", data={"csrf_token": token, "on_existing": "skip", **mapping}
    )
    assert response.status_code == 302
    with firm_context(acme.id):
        imp = finish(imp.id)
        assert (imp.status, imp.total_rows, imp.processed_rows) == ("done", 7, 7)
        assert (imp.created_count, imp.updated_count, imp.error_count) == (2, 0, 5)
        ana = db.session.scalars(select(Contact).where(Contact.email == "ana@example.com")).one()
        assert (ana.first_name, ana.last_name, ana.score) == ("Ana", "Lima", 10)
        assert ana.custom_fields == {"plan": "pro"} and ana.tag_names == ["beta", "vip"]
        dee = db.session.scalars(select(Contact).where(Contact.email == "dee@example.com")).one()
        assert dee.first_name == 'Dee "D"' and dee.custom_fields == {"plan": "multi\nline"}
        old = db.session.scalars(
            select(Contact).where(Contact.email == "existing@example.com")
        ).one()
        assert old.first_name == "Old"
        errors = {
            e.row_number: (e.column, e.message)
            for e in db.session.scalars(select(ContactImportError))
        }
    assert sorted(errors) == [3, 4, 5, 6, 7]
    assert errors[3][0] == "email" and "bad e-mail" in errors[3][1]
    assert errors[4][0] == "score"
    assert "duplicate" in errors[5][1] and "line 2" in errors[5][1]
    assert "unknown column" in errors[6][1]
    assert "already a contact" in errors[7][1]

    progress = client.get(f"/contacts/import/{imp.id}/progress", headers={"HX-Request": "true"})
    text = progress.get_data(as_text=True)
    assert 'aria-valuenow="100"' in text and "hx-trigger" not in text
    report = client.get(f"/contacts/import/{imp.id}/errors.csv")
    assert report.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert rows[0] == ["line", "email", "column", "problem", "row"]
    assert [r[0] for r in rows[1:]] == ["3", "4", "5", "6", "7"]
    assert rows[1][4] == "not-an-email,Bad,Row,1,free,"


def test_update_mode_fills_existing_contacts(client, auth, acme, alice):
    make_contact(acme, email="existing@example.com", first_name="Old")
    auth.login(alice)
    upload(client, auth, "email,first_name\nexisting@example.com,New\n")
    with firm_context(acme.id):
        imp = db.session.scalars(select(ContactImport)).one()
    token = auth.csrf_token(f"/contacts/import/{imp.id}")
    client.post(
        f"/contacts/import/{imp.id}",
        data={
            "csrf_token": token,
            "on_existing": "update",
            "column-0": "email",
            "column-1": "first_name",
        },
    )
    with firm_context(acme.id):
        imp = finish(imp.id)
        assert (imp.created_count, imp.updated_count, imp.error_count) == (0, 1, 0)
        assert db.session.scalars(select(Contact.first_name)).one() == "New"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("\n\n", "no header"),
        ("email\n\xff\n", None),
    ],
)
def test_unusable_files_are_refused_and_nothing_is_kept(client, auth, acme, alice, text, message):
    auth.login(alice)
    token = auth.csrf_token("/contacts/import")
    body = text.encode("latin-1") if message is None else text.encode()
    response = client.post(
        "/contacts/import",
        data={"csrf_token": token, "file": (io.BytesIO(body), "x.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert (message or "UTF-8") in response.get_data(as_text=True)
    with firm_context(acme.id):
        assert db.session.scalars(select(ContactImport)).all() == []
        assert db.session.scalars(select(ContactImportChunk)).all() == []


def test_a_mapping_without_email_or_with_a_field_twice_is_refused(client, auth, acme, alice):
    auth.login(alice)
    upload(client, auth, "a,b\nx@example.com,y\n")
    with firm_context(acme.id):
        imp = db.session.scalars(select(ContactImport)).one()
    token = auth.csrf_token(f"/contacts/import/{imp.id}")
    url = f"/contacts/import/{imp.id}"
    response = client.post(url, data={"csrf_token": token, "column-0": "first_name"})
    assert response.status_code == 422
    assert "e-mail address" in response.get_data(as_text=True)
    response = client.post(
        url, data={"csrf_token": token, "column-0": "email", "column-1": "email"}
    )
    assert response.status_code == 422 and "already filled" in response.get_data(as_text=True)
    response = client.post(
        url, data={"csrf_token": token, "column-0": "email", "column-1": "custom.no spaces"}
    )
    assert response.status_code == 422
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.get(ContactImport, imp.id).status == "uploaded"


def test_chunks_split_rows_anywhere_and_rows_still_read_whole(acme, alice, monkeypatch):
    monkeypatch.setattr(import_files, "CHUNK_BYTES", 7)
    with firm_context(acme.id):
        imp = store_upload(io.BytesIO(GOOD_AND_BAD.encode()), "x.csv", alice.id)
        assert db.session.scalars(select(ContactImportChunk)).all().__len__() > 20
        rows = list(read_rows(imp.id))
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6, 7, 9]  # the last row spans two lines
    assert rows[-1][1][4] == "multi\nline"


def test_a_second_copy_of_the_job_does_nothing(client, auth, acme, alice):
    auth.login(alice)
    upload(client, auth, "email\nx@example.com\n")
    with firm_context(acme.id):
        imp = db.session.scalars(select(ContactImport)).one()
    token = auth.csrf_token(f"/contacts/import/{imp.id}")
    client.post(f"/contacts/import/{imp.id}", data={"csrf_token": token, "column-0": "email"})
    with firm_context(acme.id):
        finish(imp.id)
        run_import(imp.id)
        imp = finish(imp.id)
        assert (imp.created_count, imp.processed_rows) == (1, 1)
        assert len(db.session.scalars(select(Contact)).all()) == 1


def test_another_firms_import_is_not_found(client, auth, acme, alice, charlie):
    auth.login(alice)
    upload(client, auth, "email\nx@example.com\n")
    with firm_context(acme.id):
        imp = db.session.scalars(select(ContactImport)).one()
    auth.logout()
    auth.login(charlie)
    for path in ("", "/progress", "/errors.csv"):
        assert client.get(f"/contacts/import/{imp.id}{path}").status_code == 404


def test_the_queued_job_name_resolves_to_the_job():
    from app.automation.crm import import_rows
    from app.queue import dotted, resolve

    assert resolve(dotted(import_rows.run_import)) is import_rows.run_import

"""CSV contact import pages: upload, map the columns (with a preview of the
first rows), watch the progress bar, download the report of bad rows.

Thin: the file goes straight from werkzeug's spooled upload to the
database (app/automation/crm/import_files.py); the work is a job
(app/automation/crm/import_rows.py) whose progress the page polls.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select

from app.auth import login_required_page
from app.automation.crm.import_files import (
    CONTACT_FIELDS,
    MAX_BYTES,
    UploadRefused,
    preview_rows,
    slug,
    store_upload,
)
from app.automation.crm.import_rows import (
    STALLED,
    MappingInvalid,
    error_report,
    resume_import,
    start_import,
)
from app.clock import now
from app.extensions import db
from app.models import ContactImport, ContactImportError
from app.web.pages import get_or_404, is_htmx

bp = Blueprint("contact_import", __name__, url_prefix="/contacts/import")


def _upload_page(error: str | None = None, status: int = 200):
    recent = db.session.scalars(
        select(ContactImport)
        .where(ContactImport.kind == "contacts")
        .order_by(ContactImport.id.desc())
        .limit(10)
    ).all()
    page = render_template(
        "contacts/import.html", recent=recent, error=error, max_mib=MAX_BYTES // (1024 * 1024)
    )
    return page, status


@bp.get("", strict_slashes=False)
@login_required_page
def upload_form():
    return _upload_page()


@bp.post("", strict_slashes=False)
@login_required_page
def upload():
    # Uploads may be larger than the app's 1 MiB limit for other requests;
    # werkzeug spools them to a temporary file, never into memory.
    request.max_content_length = MAX_BYTES + 64 * 1024
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _upload_page("Choose a CSV file to upload.", 400)
    try:
        imp = store_upload(upload.stream, upload.filename, g.user.id)
    except UploadRefused as exc:
        return _upload_page(str(exc), 400)
    return redirect(url_for("contact_import.show", import_id=imp.id))


def _mapping_page(imp: ContactImport, errors: dict | None = None, status: int = 200):
    page = render_template(
        "contacts/import_map.html",
        imp=imp,
        fields=CONTACT_FIELDS,
        preview=preview_rows(imp),
        custom_keys=[f"custom.{slug(name)}" if slug(name) else "" for name in imp.header],
        errors=errors or {},
    )
    return page, status


@bp.get("/<int:import_id>")
@login_required_page
def show(import_id: int):
    imp = _contact_import(import_id)
    if imp.status == "uploaded":
        return _mapping_page(imp)
    return render_template("contacts/import_progress.html", **_progress(imp))


@bp.post("/<int:import_id>")
@login_required_page
def start(import_id: int):
    imp = _contact_import(import_id)
    raw = [request.form.get(f"column-{i}", "") for i in range(len(imp.header))]
    try:
        start_import(imp, raw, request.form.get("on_existing", "skip"))
    except MappingInvalid as exc:
        db.session.rollback()
        imp.mapping = raw
        return _mapping_page(imp, exc.errors, 422)
    return redirect(url_for("contact_import.show", import_id=imp.id))


@bp.get("/<int:import_id>/progress")
@login_required_page
def progress(import_id: int):
    imp = _contact_import(import_id)
    if not is_htmx():
        return redirect(url_for("contact_import.show", import_id=imp.id))
    return render_template("contacts/_import_progress.html", **_progress(imp))


@bp.post("/<int:import_id>/resume")
@login_required_page
def resume(import_id: int):
    imp = _contact_import(import_id)
    if resume_import(imp):
        flash("The import goes on.")
    else:
        flash("This import is not stalled.")
    return redirect(url_for("contact_import.show", import_id=imp.id))


@bp.get("/<int:import_id>/errors.csv")
@login_required_page
def errors_csv(import_id: int):
    imp = _contact_import(import_id)
    name = f"import-{imp.id}-errors.csv"
    return Response(
        stream_with_context(error_report(imp)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _contact_import(import_id: int) -> ContactImport:
    """A contact import of the firm (a suppression list import is not one)."""
    imp = get_or_404(ContactImport, import_id)
    if imp.kind != "contacts":
        abort(404)
    return imp


def _progress(imp: ContactImport) -> dict:
    return {"imp": imp, "errors": _first_errors(imp), "stalled": imp.stalled_at(now(), STALLED)}


def _first_errors(imp: ContactImport, limit: int = 20) -> list[ContactImportError]:
    return db.session.scalars(
        select(ContactImportError)
        .where(ContactImportError.import_id == imp.id)
        .order_by(ContactImportError.id)
        .limit(limit)
    ).all()

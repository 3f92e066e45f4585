"""The suppression list page: search, add with a note, remove (audited),
CSV import (a job with a progress bar for large files) and export
(docs/SENDING.md)."""

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
from app.automation.crm.import_files import MAX_BYTES, UploadRefused
from app.automation.crm.import_rows import STALLED, error_report
from app.automation.delivery import suppression_csv, suppression_import, suppressions
from app.automation.delivery.gates.suppression import describe
from app.clock import now
from app.extensions import db
from app.models import ContactImport, ContactImportError, Suppression
from app.models.sending import SUPPRESSION_CHANNELS, SUPPRESSION_REASONS
from app.tenancy import current_actor
from app.web.pages import get_or_404, is_htmx, page_or_block, paginate

bp = Blueprint("suppressions", __name__, url_prefix="/suppressions")
# Files up to this size are checked and imported in the request (a few
# thousand rows, well under a second); larger ones are a job with a
# progress bar.
IN_REQUEST_BYTES = 256 * 1024


def _page(values: dict | None = None, errors: dict | None = None, status: int = 200, **extra):
    q = (request.args.get("q") or "").strip()[:320]
    reason = request.args.get("reason") or ""
    if reason not in SUPPRESSION_REASONS:
        reason = ""
    channel = request.args.get("channel") or ""
    if channel not in SUPPRESSION_CHANNELS:
        channel = ""
    stmt = suppressions.search(part=q or None, reason=reason or None, channel=channel or None)
    page = paginate(stmt.order_by(Suppression.id.desc()), 50)
    context = dict(
        page=page,
        q=q,
        reason=reason,
        channel=channel,
        reasons=SUPPRESSION_REASONS,
        manual_reasons=suppressions.MANUAL_REASONS,
        labels=describe,
        values=values or {},
        errors=errors or {},
        **extra,
    )
    if extra.get("import_errors") is not None:
        # The import form swaps its own card out of the whole page.
        return render_template("crm/suppressions.html", **context), status
    return page_or_block("crm/suppressions.html", "results", http_status=status, **context)


@bp.get("", strict_slashes=False)
@login_required_page
def index():
    return _page()


@bp.post("", strict_slashes=False)
@login_required_page
def add():
    keys = ("email", "channel", "reason", "note")
    values = {k: (request.form.get(k) or "").strip() for k in keys}
    channel = values["channel"] or "email"
    if channel not in SUPPRESSION_CHANNELS:
        return _page(values, {"channel": "Choose e-mail or SMS."}, status=400)
    try:
        # One box for both: an address for e-mail, a number for SMS.
        entry, created = suppressions.add(
            None,
            values["email"],
            values["reason"] or "manual",
            channel=channel,
            note=values["note"],
            source="page",
        )
    except suppressions.SuppressionError as exc:
        db.session.rollback()
        return _page(values, {"email": exc.message}, status=400)
    if not created:
        db.session.rollback()
        return _page(values, {"email": "This address is on the list already."}, status=400)
    db.session.commit()
    what = "e-mail" if channel == "email" else "SMS"
    flash(f"{entry.address} gets no more {what} from any workflow.")
    return redirect(url_for("suppressions.index"))


@bp.post("/<int:suppression_id>/delete")
@login_required_page
def remove(suppression_id: int):
    entry = get_or_404(Suppression, suppression_id)
    address = entry.address
    suppressions.remove(entry)
    db.session.commit()
    flash(f"{address} can be mailed again.")
    return redirect(url_for("suppressions.index"))


@bp.post("/import")
@login_required_page
def import_csv():
    # Large files may exceed the app's 1 MiB request limit; werkzeug spools
    # them to a temporary file, never into memory (as for contact imports).
    request.max_content_length = MAX_BYTES + 64 * 1024
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page(import_errors=["Choose a CSV file."], status=400)
    head = upload.stream.read(IN_REQUEST_BYTES + 1)
    if len(head) > IN_REQUEST_BYTES:
        # A large file: a job with a progress bar (suppression_import.py).
        upload.stream.seek(0)
        try:
            imp = suppression_import.start(upload.stream, upload.filename, g.user.id)
        except UploadRefused as exc:
            return _page(import_errors=[str(exc)], status=400)
        target = url_for("suppressions.import_status", suppression_import_id=imp.id)
        if request.headers.get("HX-Request"):
            return "", 204, {"HX-Redirect": target}
        return redirect(target)
    try:
        result = suppression_csv.import_csv(head, current_actor()[1])
    except suppressions.SuppressionError as exc:
        db.session.rollback()
        return _page(import_errors=[exc.message], status=400)
    if not result.ok:
        db.session.rollback()
        more = result.error_count - len(result.errors)
        errors = result.errors + ([f"… and {more} more"] if more > 0 else [])
        return _page(import_errors=["Nothing was imported:", *errors], status=400)
    flash(f"Imported {result.rows} rows: {result.added} new entries on the list.")
    if request.headers.get("HX-Request"):
        return "", 204, {"HX-Redirect": url_for("suppressions.index")}
    return redirect(url_for("suppressions.index"))


def _import_of(import_id: int) -> ContactImport:
    imp = get_or_404(ContactImport, import_id)
    if imp.kind != suppression_import.KIND:
        abort(404)
    return imp


def _progress(imp: ContactImport) -> dict:
    errors = db.session.scalars(
        select(ContactImportError)
        .where(ContactImportError.import_id == imp.id)
        .order_by(ContactImportError.id)
        .limit(20)
    ).all()
    return {"imp": imp, "errors": errors, "stalled": imp.stalled_at(now(), STALLED)}


@bp.get("/import/<int:suppression_import_id>")
@login_required_page
def import_status(suppression_import_id: int):
    imp = _import_of(suppression_import_id)
    return render_template("crm/suppression_import.html", **_progress(imp))


@bp.get("/import/<int:suppression_import_id>/progress")
@login_required_page
def import_progress(suppression_import_id: int):
    imp = _import_of(suppression_import_id)
    if not is_htmx():
        return redirect(url_for("suppressions.import_status", suppression_import_id=imp.id))
    return render_template("crm/_suppression_import_progress.html", **_progress(imp))


@bp.post("/import/<int:suppression_import_id>/resume")
@login_required_page
def import_resume(suppression_import_id: int):
    imp = _import_of(suppression_import_id)
    flash(
        "The import goes on." if suppression_import.resume(imp) else "This import is not stalled."
    )
    return redirect(url_for("suppressions.import_status", suppression_import_id=imp.id))


@bp.get("/import/<int:suppression_import_id>/errors.csv")
@login_required_page
def import_errors_csv(suppression_import_id: int):
    imp = _import_of(suppression_import_id)
    return Response(
        stream_with_context(error_report(imp)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="suppressions-{imp.id}-errors.csv"'},
    )


@bp.get("/export.csv")
@login_required_page
def export_csv():
    entries = list(db.session.scalars(suppressions.search().order_by(Suppression.id)))
    return Response(
        suppression_csv.export_csv(entries),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )

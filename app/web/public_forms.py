"""Public forms: ``GET/POST /f/<form_key>`` (no login, no session CSRF).

The page carries a signed, time-limited form token and a honeypot instead
of the session CSRF token; posts are rate-limited per IP. A JSON client
gets the fields and a token with ``GET`` + ``Accept: application/json``
and posts them back as JSON. The domain work is in
``app.automation.triggers.forms``.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)

from app.automation.triggers import double_opt_in
from app.automation.triggers import forms as domain
from app.automation.triggers.visitor import set_visitor_cookie
from app.extensions import csrf, limiter

bp = Blueprint("public_forms", __name__)
csrf.exempt(bp)

# Firms embed their forms in an iframe on their own site: the form pages
# may be framed anywhere (nothing on them acts with a signed-in user's
# rights), and run no script at all. ``frame-ancestors`` takes precedence
# over the app-wide X-Frame-Options in browsers.
EMBEDDABLE = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self' https: http:; frame-ancestors *; base-uri 'none'"
)


def _wants_json() -> bool:
    if request.method == "POST":
        return request.is_json
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _page(form, *, values=None, errors=None, message=None, status=200):
    page = render_template(
        "public/form.html",
        form=form,
        fields=domain.form_fields(form),
        token=domain.form_token(form),
        honeypot=domain.HONEYPOT,
        token_field=domain.TOKEN_FIELD,
        values=values or {},
        errors=errors or {},
        message=message,
    )
    return page, status, {"Cache-Control": "no-store", "Content-Security-Policy": EMBEDDABLE}


def _load(form_key: str):
    form = domain.find_form(form_key)
    if form is None:
        abort(404)
    return form


@bp.get("/f/<form_key>")
@limiter.limit("120 per minute")
def show(form_key: str):
    form = _load(form_key)
    if _wants_json():
        return jsonify(
            {
                "name": form.name,
                "fields": domain.form_fields(form),
                "token": domain.form_token(form),
                "token_field": domain.TOKEN_FIELD,
            }
        )
    return _page(form)


@bp.post("/f/<form_key>")
@limiter.limit(lambda: current_app.config.get("PUBLIC_FORM_RATE_LIMIT", "20/minute;200/hour"))
def submit(form_key: str):
    form = _load(form_key)
    as_json = _wants_json()
    if as_json:
        raw = request.get_json(silent=True)
        if not isinstance(raw, dict):
            return _error(400, "bad_request", "the body must be a JSON object", {})
    else:
        raw = request.form.to_dict()
    raw = {str(k): v for k, v in raw.items()}
    token = raw.get(domain.TOKEN_FIELD) or request.headers.get("X-Form-Token")
    try:
        domain.check_token(form, token)
    except domain.FormExpired:
        message = "This form has expired. Please submit it again."
        if as_json:
            return _error(
                400, "form_expired", message, {domain.TOKEN_FIELD: ["invalid or expired"]}
            )
        return _page(form, values=raw, message=message, status=400)
    result = domain.clean(form, raw)
    if result.spam:
        # Look successful to the bot; store nothing.
        return _done(form, as_json, contact=None)
    if result.errors:
        if as_json:
            return _error(422, "validation_error", "some fields need attention", result.errors)
        return _page(form, values=raw, errors=result.errors, status=422)
    ip, agent = request.remote_addr or "", request.user_agent.string or ""
    if form.double_opt_in:
        double_opt_in.start(form, result.values, ip=ip, user_agent=agent)
        return _pending(form, as_json)
    consent = (
        {"method": "form", "wording": form.consent_text, "ip": ip, "user_agent": agent}
        if (form.consent_text or "").strip()
        else None
    )
    submission, contact, _ = domain.submit(
        form,
        result.values,
        agent,
        key=domain.submission_key(str(token), result.values),
        consent=consent,
    )
    # An anonymous post never ties this browser to a contact it did not make.
    owner = contact if getattr(submission, "new_contact", False) else None
    return _done(form, as_json, contact=owner, submission=submission)


def _pending(form, as_json: bool):
    message = "Almost done: we sent you an e-mail. Follow its link to confirm."
    if as_json:
        response = jsonify({"status": "pending", "message": message, "redirect_url": None})
        response.status_code = 202
    else:
        response = make_response(
            render_template("public/form_success.html", form=form, message=message)
        )
        response.headers["Content-Security-Policy"] = EMBEDDABLE
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/f/confirm/<token>")
@limiter.limit("60 per minute")
def confirm_page(token: str):
    """A button, not the confirmation: link scanners fetch this page."""
    try:
        signup = double_opt_in.read(token)
    except double_opt_in.BadConfirmation as exc:
        return _confirm_error(exc)
    return _confirm_template(
        "public/confirm.html", email=signup.email, done=bool(signup.confirmed_at)
    )


@bp.post("/f/confirm/<token>")
@limiter.limit("60 per minute")
def confirm(token: str):
    try:
        form, contact_id = double_opt_in.confirm(
            token, ip=request.remote_addr or "", user_agent=request.user_agent.string or ""
        )
    except double_opt_in.BadConfirmation as exc:
        return _confirm_error(exc)
    target = domain.safe_redirect(form.redirect_url)
    response = (
        redirect(target, code=303)
        if target
        else _confirm_template("public/form_success.html", form=form, message=form.success_message)
    )
    if contact_id is not None:
        # Following the link proves the address is the visitor's.
        set_visitor_cookie(response, form.firm_id, contact_id)
    return response


def _confirm_template(name: str, **context):
    response = make_response(render_template(name, **context))
    response.headers["Cache-Control"] = "no-store"
    return response


def _confirm_error(exc):
    response = _confirm_template("public/confirm.html", error=str(exc))
    response.status_code = 410 if exc.expired else 400
    return response


def _done(form, as_json: bool, *, contact, submission=None):
    target = domain.safe_redirect(form.redirect_url)
    if as_json:
        response = jsonify(
            {
                "status": "ok",
                "submission": getattr(submission, "id", None),
                "message": form.success_message,
                "redirect_url": target,
            }
        )
        response.status_code = 201
    elif target:
        response = redirect(target, code=303)
    else:
        response = make_response(render_template("public/form_success.html", form=form))
        response.headers["Content-Security-Policy"] = EMBEDDABLE
    if contact is not None:
        set_visitor_cookie(response, form.firm_id, contact.id)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(status: int, code: str, message: str, fields: dict):
    return jsonify({"error": {"code": code, "message": message, "fields": fields}}), status

"""The JSON API: ``/api/v1/...``, ``/api/openapi.json``, ``/api/docs/``.

Layout
------
- :mod:`app.api.core` — the blueprints, base models ``Input`` (request
  bodies, unknown fields refused) and ``Output`` (responses, read from ORM
  attributes), and the ``@endpoint`` decorator.
- :mod:`app.api.errors` — ``ApiError`` and the JSON error bodies.
- :mod:`app.api.access` — 401/403, CSRF for session writes, rate limits,
  ``get_or_404``.
- :mod:`app.api.pagination` — ``PageQuery``, ``paginate``, ``page_of``.
- :mod:`app.api.openapi` — the OpenAPI document and the docs page, built
  from the models the endpoints declare.
- one module per resource family (``workflows``, ``graph``, ``executions``,
  ``goals``, ``contacts``, ``crm``), plus ``lifecycle``.

Adding endpoints (e.g. ``app/api/lifecycle.py``)
------------------------------------------------
Write a module in this package and list it in :data:`ENDPOINT_MODULES`::

    from app.api.access import get_or_404
    from app.api.core import Input, Output, endpoint
    from app.api.errors import ApiError
    from app.api.pagination import PageQuery, page_of, paginate

    class PublishIn(Input):                      # request body (extra="forbid")
        mapping: dict[str, str] = {}

    class VersionOut(Output):                    # response, from_attributes
        number: int
        created_at: datetime

    @endpoint("/automation/workflows/<int:workflow_id>/publish/", "POST",
              tag="Lifecycle", summary="Publish the current graph",
              body=PublishIn, response=VersionOut, status=201, errors=(409, 422))
    def publish(workflow_id: int, body: PublishIn):
        \"\"\"Docstring: becomes the operation's description.\"\"\"
        workflow = get_or_404(Workflow, workflow_id)
        version = publish_workflow(workflow, body.mapping)   # the domain call
        db.session.commit()
        return version                           # serialized through VersionOut

    @endpoint("/automation/workflows/<int:workflow_id>/versions/", tag="Lifecycle",
              summary="List versions", query=PageQuery, response=page_of(VersionOut))
    def list_versions(workflow_id: int, query: PageQuery):
        get_or_404(Workflow, workflow_id)
        stmt = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
        return paginate(stmt, WorkflowVersion.id, query)

Rules: the rule is relative to ``/api/v1``; the view gets the URL
variables plus ``body=``/``query=``; return an ORM object or dict (run
through ``response``), ``None`` for 204, or a ``flask.Response``. Raise
``ApiError(status, code, message, fields=...)`` for errors (extra keyword
arguments land in the error object, e.g. ``problems=[...]``). Auth, CSRF,
rate limits and the JSON error shape apply automatically; another firm's
rows are invisible, so ``get_or_404`` gives 404. Record writes with
``app.models.audit.record``. The module is imported before the blueprint
is registered; endpoints cannot be added afterwards.
"""

from __future__ import annotations

from flask import Flask

# Resource modules, imported for their @endpoint declarations
# (openapi registers its own routes).
from app.api import (  # noqa: F401
    access,
    audiences,
    contacts,
    crm,
    errors,
    executions,
    experiments,
    forecasts,
    goals,
    graph,
    hooks,
    lifecycle,
    lifecycle_collab,
    openapi,
    sending,
    sending_settings,
    suppressions,
    webhook_settings,
    workflows,
)
from app.api.core import ENDPOINTS, api_bp, docs_bp

_installed = False


def load_endpoints() -> list:
    """Every endpoint, :data:`app.api.core.ENDPOINTS` (tests parametrize
    over it before any app exists; importing this package declared them)."""
    return ENDPOINTS


def _install_once() -> None:
    """Endpoints and hooks are declared on module-level blueprints; a test
    session may build several apps, so this runs once per process."""
    global _installed
    if _installed:
        return
    load_endpoints()
    errors.install(api_bp, docs_bp)
    access.install()
    _installed = True


def register_api(app: Flask) -> None:
    _install_once()
    app.register_blueprint(api_bp)
    app.register_blueprint(docs_bp)

"""The API's side of graph edits: the checks and refusals are the domain's
(``app/automation/graph/editing.py``, the same the builder calls); here
they become the API's error bodies, with the API's field names."""

from __future__ import annotations

from app.api.errors import ApiError, validation_error
from app.automation.graph.editing import GraphError, check_configuration
from app.automation.graph.node_checks import node_warnings

# The builder's names for an edge's parts, and the API's.
EDGE_FIELDS = {"source": "source_node", "target": "target_node", "port": "condition_type"}


def _prefixed(fields: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {
        (prefix if key == "__root__" else f"{prefix}.{key}"): messages
        for key, messages in fields.items()
    }


def api_error(exc: GraphError, names: dict[str, str] | None = None) -> ApiError:
    """A refused graph edit as the API answers it. With ``names`` (an
    edge's), the message names the field too."""
    names = names or {}
    fields = {names.get(key, key): messages for key, messages in exc.fields.items()}
    if exc.code != "validation_error":
        return ApiError(exc.status, exc.code, str(exc), fields=fields or None, **exc.extra)
    if names:
        field = names.get(exc.field, exc.field)
        return validation_error(fields, status=exc.status, message=f"{field}: {exc}")
    return validation_error(fields, status=exc.status)


def check_node(node_type: str, configuration: dict) -> None:
    """422 naming the field when a node's type or configuration is invalid."""
    try:
        check_configuration(node_type, configuration)
    except GraphError as exc:
        raise api_error(exc) from None


def node_warnings_of(node_type: str, configuration: dict) -> dict[str, list[str]]:
    """What a save that passed :func:`check_node` should still say (a
    webhook host that does not resolve now), keyed like its errors
    (``configuration.url``): the ``warnings`` of the answer."""
    return _prefixed(node_warnings(node_type, configuration), "configuration")

"""The OpenAPI 3.1 document and the docs page, built from the endpoints'
own pydantic models (:data:`app.api.core.ENDPOINTS`).

Nothing here is written by hand per endpoint: the request models that
validate input and the response models that serialize output are turned
into ``components/schemas`` with pydantic's JSON Schema generator, so the
document cannot drift from the code. ``/api/docs/`` renders the same
document server-side into an HTML reference (no JavaScript, no CDN).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from flask import jsonify, render_template
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import models_json_schema

from app.api.core import ENDPOINTS, MAX_BATCH, docs_bp

_RULE_VAR = re.compile(r"<(?:(\w+):)?(\w+)>")
REF = "#/components/schemas/{model}"


class Problem(BaseModel):
    node: str | None = None
    message: str
    # A branching step with no outgoing edge: the outputs to connect.
    ports: list[str] | None = None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    fields: dict[str, list[str]] | None = None
    problems: list[Problem] | None = None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "fields"?}}``."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, unknown or invalid fields, bad query parameters, missing CSRF token",
    401: "No or invalid credentials",
    403: "Portal users may not use the API",
    404: "No such object in your firm",
    409: "Conflicts with existing data",
    413: "Body larger than 1 MiB",
    422: "Well-formed but invalid (broken graph, bad configuration)",
    429: "Rate limited; see Retry-After",
}
IMPLIED_ERRORS = (400, 401, 403, 429)


def _path_and_params(rule: str) -> tuple[str, list[dict]]:
    params = []

    def replace(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        schema: dict[str, Any] = {"type": "string"}
        if converter == "int":
            schema = {"type": "integer", "minimum": 0}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return "/api/v1" + _RULE_VAR.sub(replace, rule), params


def _query_params(model: type[BaseModel], schemas: dict) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        params.append(param)
    schemas.update(schema.get("$defs", {}))
    return params


@cache
def openapi_document() -> dict:
    pairs: list[tuple[type[BaseModel], str]] = [(ErrorBody, "serialization")]
    for ep in ENDPOINTS:
        if ep.body is not None:
            pairs.append((ep.body, "validation"))
        if ep.response is not None:
            pairs.append((ep.response, "serialization"))
        if ep.batch is not None:
            pairs += [(ep.batch[0], "validation"), (ep.batch[1], "serialization")]
    pairs = list(dict.fromkeys(pairs))
    refs, top = models_json_schema(pairs, ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    error_ref = refs[(ErrorBody, "serialization")]

    paths: dict[str, dict] = {}
    for ep in ENDPOINTS:
        path, parameters = _path_and_params(ep.rule)
        if ep.query is not None:
            parameters += _query_params(ep.query, schemas)
        for name, description in ep.headers.items():
            parameters.append(
                {
                    "name": name,
                    "in": "header",
                    "required": False,
                    "description": description,
                    "schema": {"type": "string", "maxLength": 200},
                }
            )
        responses: dict[str, Any] = {}
        if ep.status == 204 or ep.response is None:
            responses[str(ep.status)] = {"description": "Done"}
        else:
            responses[str(ep.status)] = {
                "description": "Success",
                "content": {"application/json": {"schema": refs[(ep.response, "serialization")]}},
            }
        if ep.batch is not None:
            responses["200"] = {
                "description": f"The batch form: one result per item, in order (up to {MAX_BATCH})",
                "content": {"application/json": {"schema": refs[(ep.batch[1], "serialization")]}},
            }
        error_statuses = set(IMPLIED_ERRORS) | set(ep.errors)
        if "{" in path:
            error_statuses.add(404)
        if ep.body is not None:
            error_statuses |= {413}
        for status in sorted(error_statuses):
            responses[str(status)] = {
                "description": ERROR_DESCRIPTIONS.get(status, "Error"),
                "content": {"application/json": {"schema": error_ref}},
            }
        operation: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "responses": responses,
        }
        if ep.description:
            operation["description"] = ep.description
        if parameters:
            operation["parameters"] = parameters
        if ep.body is not None:
            schema = refs[(ep.body, "validation")]
            if ep.batch is not None:
                items = {
                    "type": "array",
                    "items": refs[(ep.batch[0], "validation")],
                    "minItems": 1,
                    "maxItems": MAX_BATCH,
                }
                schema = {"oneOf": [schema, items]}
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(path, {})[ep.method.lower()] = operation

    # A component's title is its name: pydantic titles a model's input and
    # output forms alike ("Document" for Document-Input and -Output), and
    # generators that name classes by title drop one of the two.
    for name, schema in schemas.items():
        schema["title"] = name
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Marketing automation API",
            "version": "1.0.0",
            "description": (
                "Workflows, their triggers, nodes and edges, executions, goals and "
                "analytics, and the CRM records they act on. Authenticate with "
                "`Authorization: Bearer <token>` (`automation create-token EMAIL`). "
                "Lists are cursor-paginated: `{results, next}`; pass `?cursor=<next>`."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }


@docs_bp.get("/openapi.json")
def openapi_json():
    return jsonify(openapi_document())


def _type_label(schema: dict) -> tuple[str, str | None]:
    """A short type name for the docs page and the schema it links to."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return name, name
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [_type_label(option) for option in schema[key]]
            link = next((target for _, target in parts if target), None)
            return " | ".join(label for label, _ in parts), link
    kind = schema.get("type", "any")
    if kind == "array":
        label, link = _type_label(schema.get("items", {}))
        return f"array of {label}", link
    if "enum" in schema:
        return " | ".join(repr(value) for value in schema["enum"]), None
    if "const" in schema:
        return repr(schema["const"]), None
    if schema.get("format"):
        return f"{kind} ({schema['format']})", None
    return str(kind), None


def _schema_rows(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        label, link = _type_label(prop)
        rows.append(
            {
                "name": name,
                "type": label,
                "link": link,
                "required": name in required,
                "description": prop.get("description", ""),
                "default": prop.get("default"),
                "has_default": "default" in prop,
            }
        )
    return rows


@docs_bp.get("/docs/")
def docs_page():
    document = openapi_document()
    operations_by_tag: dict[str, list[dict]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            body_label = _type_label(body["schema"]) if body else None
            responses = []
            for status, response in op["responses"].items():
                content = response.get("content", {}).get("application/json")
                label = _type_label(content["schema"]) if content else (None, None)
                responses.append(
                    {
                        "status": status,
                        "description": response["description"],
                        "type": label[0],
                        "link": label[1],
                    }
                )
            params = []
            for param in op.get("parameters", []):
                label, link = _type_label(param["schema"])
                params.append({**param, "type": label, "link": link})
            operations_by_tag.setdefault(op["tags"][0], []).append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": op["summary"],
                    "description": op.get("description", ""),
                    "parameters": params,
                    "body": body_label,
                    "responses": responses,
                }
            )
    # Tags in the order their modules declare them (workflows first), not A-Z.
    order = list(dict.fromkeys(ep.tag for ep in ENDPOINTS))
    operations_by_tag = dict(
        sorted(operations_by_tag.items(), key=lambda item: order.index(item[0]))
    )
    schemas = [
        {"name": name, "description": schema.get("description", ""), "rows": _schema_rows(schema)}
        for name, schema in document["components"]["schemas"].items()
    ]
    return render_template(
        "api/docs.html", info=document["info"], tags=operations_by_tag, schemas=schemas
    )

"""`/api/v1/docs` without the internet: Swagger UI's assets served from the `swagger-ui-bundle` package, operations
grouped by what they are about, and the contract each view declares (welead/api/access.py) written into the document.

APIFlask's default page loads Swagger UI from a public CDN; offline, or where that CDN is blocked (often in mainland
China), the page stays blank. The assets ship with the package, so they are served from here under
`/api/v1/docs/assets/`. Every operation lives on one blueprint, so APIFlask's automatic tags would put them all
under one heading: the tag comes from the path instead (`/api/v1/followers/...` → Followers).

APIFlask documents what it knows (inputs, 401, 422). What the views declare besides is added here: the roles
(`x-roles`, a 403 for the roles left out), raw request bodies such as YAML playbooks, 413 for every body, 400
everywhere, the bounds of integer ids in paths; every error answer has the one error body (welead.api.json_errors).
"""

from __future__ import annotations

import re
from typing import Any

import swagger_ui_bundle
from apiflask import APIFlask
from flask import Blueprint

from welead.api.access import BODY_ATTR, QUERY_ATTR, STATUS, roles_of
from welead.api.schemas import ERROR, MAX_ID
from welead.auth import ROLES

ASSETS = "/api/v1/docs/assets"
PREFIX = "/api/v1/"

TAGS: dict[str, str] = {
    "followers": "Followers: the list, one record, its timeline, its explained score",
    "playbook": "The marketer's rules: load, check, versions",
    "segments": "Filters over followers: preview, count, saved segments",
    "templates": "The template-message library, with previews",
    "messages": "One template message to one follower",
    "broadcasts": "Template messages to a segment: send, progress, pause, resume, cancel",
    "deliveries": "Each outbound message and its state",
    "interactions": "Recorded callbacks whose effects failed, and retrying them",
}


def init_app(app: APIFlask) -> None:
    """Point the docs page at local assets and tag the generated operations."""
    assets = Blueprint("docs_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path,
                       static_url_path=ASSETS)  # fmt: skip
    app.register_blueprint(assets)
    app.config.update(
        SWAGGER_UI_CSS=f"{ASSETS}/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS=f"{ASSETS}/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS=f"{ASSETS}/swagger-ui-standalone-preset.js",
        DOCS_FAVICON=f"{ASSETS}/favicon-32x32.png",
        SWAGGER_UI_CONFIG={"persistAuthorization": True, "docExpansion": "list"},
        HTTP_ERROR_SCHEMA=ERROR,
        VALIDATION_ERROR_SCHEMA=ERROR,
    )
    app.spec_processor(lambda spec: tag_by_path(contract(app, spec)))


def contract(app: APIFlask, spec: dict[str, Any]) -> dict[str, Any]:
    """Write each /api/v1 operation's declared roles, raw body and error answers into the document."""
    spec.setdefault("components", {}).setdefault("schemas", {}).setdefault("HTTPError", ERROR)
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<([^<:]+:)?", "{", rule.rule).replace(">", "}")
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = spec.get("paths", {}).get(path, {}).get(method.lower())
            if rule.rule.startswith(PREFIX) and isinstance(operation, dict):
                _roles(operation, roles_of(view))
                _body(operation, getattr(view, BODY_ATTR, None))
                _body_required(spec, operation)
                _query(operation, getattr(view, QUERY_ATTR, ()))
                _ids(operation)
                _error(operation, 400)  # NUL or lone surrogates anywhere (access.refuse_unstorable)
    return spec


def _error(operation: dict[str, Any], status: int) -> None:
    ref = {"$ref": "#/components/schemas/HTTPError"}
    operation.setdefault("responses", {}).setdefault(
        str(status), {"description": STATUS[status], "content": {"application/json": {"schema": ref}}}
    )


def _roles(operation: dict[str, Any], roles: frozenset[str] | None) -> None:
    if roles is None:
        return
    named = [r for r in ROLES if r in roles]
    operation["x-roles"] = named
    operation["description"] = (operation.get("description") or "") + f"\n\nRoles: {', '.join(named)}."
    if len(named) < len(ROLES):
        _error(operation, 403)


def _body(operation: dict[str, Any], raw: dict[str, Any] | None) -> None:
    if raw is not None:
        content = {media: {"schema": raw["schema"]} for media in raw["media_types"]}
        operation["requestBody"] = {"required": True, "description": raw["description"], "content": content}
    if "requestBody" in operation:
        _error(operation, 413)


def _body_required(spec: dict[str, Any], operation: dict[str, Any]) -> None:
    """A JSON body whose schema has required fields is itself required: a request without one is refused (422), so
    the document must not present it as valid."""
    body = operation.get("requestBody")
    ref = ((body or {}).get("content", {}).get("application/json", {}).get("schema") or {}).get("$ref", "")
    schema = spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    if body is not None and schema.get("required"):
        body["required"] = True


def _query(operation: dict[str, Any], params: tuple[dict[str, Any], ...]) -> None:
    known = {(p.get("in"), p.get("name")) for p in operation.get("parameters", [])}
    parameters = operation.setdefault("parameters", [])
    parameters += [{"in": "query", **p} for p in params if ("query", p["name"]) not in known]


def _ids(operation: dict[str, Any]) -> None:
    """Integer path parameters are ids: 0 to 2^63-1 (`allow` answers 404 above, the `int` converter below)."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if parameter.get("in") == "path" and schema.get("type") == "integer":
            schema.setdefault("minimum", 0)
            schema.setdefault("maximum", MAX_ID)


def tag_by_path(spec: dict[str, Any]) -> dict[str, Any]:
    """Each operation's tag is the first path segment after /api/v1/; known ones carry a description."""
    used: list[str] = []
    for route, operations in spec.get("paths", {}).items():
        segment = route.removeprefix(PREFIX).split("/", 1)[0] if route.startswith(PREFIX) else "other"
        for operation in operations.values():
            if isinstance(operation, dict):
                operation["tags"] = [segment.capitalize()]
        if segment not in used:
            used.append(segment)
    order = [s for s in TAGS if s in used] + sorted(s for s in used if s not in TAGS)
    spec["tags"] = [{"name": s.capitalize(), **({"description": TAGS[s]} if s in TAGS else {})} for s in order]
    return spec

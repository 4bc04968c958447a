"""`/api/v1/docs` without the internet: Swagger UI's assets served from the `swagger-ui-bundle` package, operations
grouped by what they are about.

APIFlask's default page loads Swagger UI from a public CDN; offline, or where that CDN is blocked (often in mainland
China), the page stays blank. The assets ship with the package, so they are served from here under
`/api/v1/docs/assets/`. Every operation lives on one blueprint, so APIFlask's automatic tags would put them all
under one heading: the tag comes from the path instead (`/api/v1/followers/...` → Followers).
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from apiflask import APIFlask
from flask import Blueprint

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
    )
    app.spec_processor(tag_by_path)


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

"""`/`: a small page that says where things are, so a browser pointed at the server does not land on a JSON 404.

The page links the dashboard, the API docs, health, metrics and (without WeChat credentials) the sandbox.
It names no secret, so it needs no token. A client that asks for JSON gets the same links as JSON.
"""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, jsonify, request

from foundation.services import services

bp = Blueprint("landing", __name__)


def links(sandbox: bool) -> list[tuple[str, str, str]]:
    """(label, path, what it is) of every page worth knowing, the sandbox's only when it is mounted."""
    rows = [
        ("Dashboard", "/dashboard", "the reports drawn (sign in with an API token)"),
        ("API docs", "/api/v1/docs", "the admin API, browsable (Swagger UI, served locally)"),
        ("OpenAPI", "/api/v1/openapi.json", "the API description, for tools"),
        ("Health", "/healthz", "database, Redis, the applier's backlog"),
        ("Metrics", "/metrics", "Prometheus text format"),
        ("WeChat callback", "/wechat/callback", "the OA's server URL"),
        ("WeCom callback", "/wecom/callback", "the WeCom app's callback URL"),
    ]
    if sandbox:
        rows.append(("Sandbox", "/sandbox/_control", "the fake WeChat API and what WeLead sent to it"))
    return rows


def _html(rows: list[tuple[str, str, str]]) -> str:
    items = "\n".join(
        f'<li><a href="{escape(path)}">{escape(label)}</a> <code>{escape(path)}</code>: {escape(what)}</li>'
        for label, path, what in rows
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>WeLead</title></head>\n'
        f"<body><h1>WeLead</h1><p>The admin API needs a bearer token (<code>instance/admin-token</code>).</p>\n"
        f"<ul>\n{items}\n</ul></body></html>\n"
    )


@bp.get("/")
def index() -> Response:
    rows = links(services().settings.sandbox)
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
        return jsonify(links={label: path for label, path, _ in rows})
    return Response(_html(rows), mimetype="text/html")

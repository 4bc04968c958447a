"""What `make run` prints once the stack is up: where everything is, and the admin token."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from foundation.config import Settings


def _database(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ValueError:
        return "(unparsable DATABASE_URL)"


def _rows(s: Settings, health: int | None, redis_line: str, token: str) -> list[tuple[str, str]]:
    local = f"http://127.0.0.1:{s.port}"
    mode = "safe mode (AES)" if s.wechat_aes_key else "plaintext mode"
    rows = [
        ("WeChat callback", f"{s.public_url}/wechat/callback  ({mode}, token {s.wechat_token!r})"),
        ("WeCom callback", f"{s.public_url}/wecom/callback"),
        ("Health", f"{local}/healthz  ({health if health is not None else 'not answering yet'})"),
        ("Metrics", f"{local}/metrics  (Prometheus)"),
        ("API docs", f"{local}/api/v1/docs"),
        ("OpenAPI", f"{local}/api/v1/openapi.json"),
    ]
    if s.sandbox:
        rows.append(("Sandbox", f"{local}/sandbox/_control  (no WeChat credentials: WeChat API served here)"))
        rows.append(("Sandbox log", f"{local}/sandbox/_control/sent  (what WeLead sent)"))
    return [
        *rows,
        ("Database", _database(s.database_url)),
        ("Redis", redis_line),
        ("Admin token", token or "(none printed by `flask tokens ensure-admin`)"),
    ]


def banner(s: Settings, pid: int, token: str, health: int | None, redis_line: str) -> str:
    rows = _rows(s, health, redis_line, token)
    width = max(len(k) for k, _ in rows) + 2
    lines = [f"WeLead is running (supervisor pid {pid}); Ctrl-C or SIGTERM stops everything."]
    lines += [f"  {k + ':':<{width}}{v}" for k, v in rows]
    return "\n" + "\n".join(lines) + "\n"

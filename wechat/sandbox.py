"""A local fake of the WeChat OA and WeCom APIs WeLead calls, served under /sandbox when no credentials are set.

It answers with WeChat's own JSON shapes and error codes, so the real clients (`wechat.api`) run unchanged against
it. All state is in Redis under `sandbox:` so every gunicorn worker and test process sees the same tokens, tags,
records and switches. docs/sandbox.md describes the endpoints, the controls and how to watch what was sent.

- `/sandbox/oa/cgi-bin/<api>` and `/sandbox/wecom/cgi-bin/<api>`: the fakes (`wechat.sandbox_apis`).
- `/sandbox/_control`: GET the state, POST a configuration; `/sandbox/_control/sent`: the call records;
  `/sandbox/_control/reset`: forget everything.
- `SandboxControl(redis)` (`wechat.sandbox_state`): the same controls from Python (tests, bench).

The app factory mounts it with `mount(app, settings=..., connection=...)`: the sandbox knows nothing of the app's
services, only how to get the account settings and a Redis connection when a request comes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from wechat.sandbox_apis import OA_APIS, WECOM_APIS, serve
from wechat.sandbox_contacts import CONTACT_APIS
from wechat.sandbox_media import MEDIA_APIS, describe_upload, media
from wechat.sandbox_members import WECOM_MEMBER_APIS
from wechat.sandbox_oauth import TICKET_APIS
from wechat.sandbox_oauth import bp as oauth_bp
from wechat.sandbox_state import Call, ConfigError, SandboxControl
from wechat.sandbox_transfer import TRANSFER_APIS
from wechat.sandbox_welcome import WELCOME_APIS
from wechat.settings import WeChatSettings

OA_APIS = {**OA_APIS, **TICKET_APIS}  # the JS-SDK jsapi_ticket (OA web authorization: wechat.sandbox_oauth)
WECOM_APIS = {**WECOM_APIS, **TRANSFER_APIS}  # customer transfers (在职/离职继承)
WECOM_APIS = {**WECOM_APIS, **WECOM_MEMBER_APIS}  # contact ways list corp members only (60111)
WECOM_APIS = {**WECOM_APIS, **WELCOME_APIS}  # send_welcome_msg: once per WelcomeCode, within 20 s
WECOM_APIS = {**WECOM_APIS, **CONTACT_APIS}  # update_contact_way: team codes re-list their reps
OA_APIS = {**OA_APIS, **MEDIA_APIS}  # media/upload, and image customer-service messages naming uploaded media
EXTENSION = "wechat.sandbox"
bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")


@dataclass(frozen=True)
class Wiring:
    """How the sandbox reaches its dependencies; callables, so it sees the app's current settings and connection."""

    settings: Callable[[], WeChatSettings]
    connection: Callable[[], redis.Redis]


def mount(app: Flask, *, settings: Callable[[], WeChatSettings], connection: Callable[[], redis.Redis]) -> None:
    """Serve the sandbox under /sandbox in `app`."""
    app.extensions[EXTENSION] = Wiring(settings, connection)
    app.register_blueprint(bp)
    app.register_blueprint(oauth_bp)


def _body() -> Any:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return raw.decode("utf-8", "replace")


def _multipart() -> tuple[dict[str, Any], dict[str, bytes]]:
    """A multipart upload: the record's description of each part, and the parts' bytes for the fake."""
    files = {name: part.read() for name, part in request.files.items()}
    described = {name: describe_upload(request.files[name].filename or "", request.files[name].mimetype, data)
                 for name, data in files.items()}  # fmt: skip
    return {**request.form.to_dict(), **described}, files


def _wiring() -> Wiring:
    return current_app.extensions[EXTENSION]


def _control() -> SandboxControl:
    return SandboxControl(_wiring().connection())


@bp.route("/<any(oa, wecom):side>/cgi-bin/<path:api>", methods=["GET", "POST"])
def fake_api(side: str, api: str) -> Response | tuple[Response, int]:
    method, handler = (OA_APIS if side == "oa" else WECOM_APIS).get(api, (None, None))
    if handler is None:
        return jsonify(errcode=404, errmsg=f"the sandbox does not fake {side}/{api}"), 404
    wiring = _wiring()
    ctl = SandboxControl(wiring.connection())
    body, files = (_multipart() if request.mimetype == "multipart/form-data" else (_body(), {})) if method == "POST" \
        else (None, {})  # fmt: skip
    call = Call(f"{side}/{api}", method, request.args.to_dict(), body, wiring.settings(), files)
    answer = serve(ctl, call, handler)
    ctl.record(call, answer)
    pause = ctl.delay(call.endpoint)
    if pause:
        time.sleep(pause)
    return jsonify(answer)


@bp.get("/_control")
def control_state() -> Response:
    return jsonify(_control().state())


@bp.post("/_control")
def control_configure() -> Response | tuple[Response, int]:
    config = request.get_json(silent=True)
    if not isinstance(config, dict):
        return jsonify(error="a JSON object is expected"), 400
    ctl = _control()
    try:
        ctl.configure(config)
    except ConfigError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(ctl.state())


@bp.get("/_control/sent")
def control_sent() -> Response:
    endpoint = request.args.get("endpoint") or None
    ok_only = request.args.get("ok") in ("1", "true", "yes")
    start = request.args.get("start", 0, type=int)
    records = _control().sent(endpoint, ok_only=ok_only, start=start)
    return jsonify(sent=records, count=len(records))


@bp.get("/_control/media/<media_id>")
def control_media(media_id: str) -> Response | tuple[Response, int]:
    """The bytes uploaded under a temporary media id (what the follower would see)."""
    data = media(_control(), media_id)
    if data is None:
        return jsonify(error="no such media (or past its 3 days)"), 404
    return Response(data, mimetype="image/png" if data.startswith(b"\x89PNG") else "image/jpeg")


@bp.post("/_control/reset")
def control_reset() -> Response:
    return jsonify(removed=_control().reset())

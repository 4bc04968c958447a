"""Who may call what, and what an endpoint answers: the declarations every /api/v1 view makes, and the shared
look-ups that scope reads to the caller.

    @bp.get("/followers/<openid>")
    @allow("marketer", "staff", "rep")            # roles (admin always): 401 without a token, 403 for the others
    @bp.doc(summary="One follower", responses=answers(FollowerOut, 404))
    def get_one(openid): ...

`allow` goes right under the route decorator, so the role is checked before the query or body is read (a rep
sending a bad body gets 403, not 422). tests/test_roles.py fails for any /api/v1 endpoint without it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from apiflask import abort
from flask import request
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from scrm import access, followers
from scrm.models import Follower
from welead.api import bp
from welead.auth import ROLES, Principal, auth

View = TypeVar("View", bound=Callable[..., Any])
ROLES_ATTR = "welead_roles"
BODY_ATTR = "welead_raw_body"
QUERY_ATTR = "welead_query_params"

# What each error status means across the API; `answers` attaches the shared error body to each.
STATUS: dict[int, str] = {
    400: "Bad request: a parameter or the body cannot be understood (the message names it)",
    403: "Forbidden: this token's role may not do this",
    404: "Not found, or not visible to this token",
    409: "Conflict with the current state (the message says why)",
    413: "The body is larger than the cap (WELEAD_MAX_BODY, 64 KiB by default)",
    422: "Understood but invalid (the detail lists what)",
}


def principal() -> Principal:
    return auth.current_user


def allow(*roles: str) -> Callable[[View], View]:
    """Declare and enforce the roles that may call the endpoint (admin always may); also requires a token."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    allowed = frozenset(("admin", *roles))

    def decorate(view: View) -> View:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            who = principal()
            if who.role not in allowed:
                abort(403, f"role {who.role!r} may not do this")
            refuse_unstorable()
            return view(*args, **kwargs)

        setattr(checked, ROLES_ATTR, allowed)
        return bp.auth_required(auth)(checked)

    return decorate


def refuse_unstorable() -> None:
    """400 for text no column can store, before any query sees it: NUL (PostgreSQL refuses it in text) and lone
    surrogates (not UTF-8), in the path, the query string or a JSON body."""
    texts = [request.path, *(text for pair in request.args.items(multi=True) for text in pair)]
    if request.is_json:
        try:
            texts += _strings(request.get_json(silent=True))
        except RecursionError:
            abort(400, "the JSON body is nested too deeply")
    if any("\x00" in text or not _utf8(text) for text in texts):
        abort(400, "text may not contain NUL characters or lone surrogates")


def _strings(doc: Any) -> list[str]:
    """Every string (keys included) in a parsed JSON document, without recursion."""
    out, stack = [], [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return out


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def roles_of(view: Callable[..., Any]) -> frozenset[str] | None:
    """The roles a view declared with `allow`, or None when it declared none."""
    return getattr(view, ROLES_ATTR, None)


def answers(ok: Any = None, *errors: int, status: int | tuple[int, ...] = 200, about: str = "") -> dict[Any, Any]:
    """`responses=` for `bp.doc`: the success status(es) with body schema `ok`, and the error statuses the view
    may answer besides 401/403 (added from `allow`), 413 and 400 (added for bodies) and 422 (added for inputs)."""
    out: dict[Any, Any] = {}
    for code in (status,) if isinstance(status, int) else status:
        body = {"content": {"application/json": {"schema": ok}}} if ok is not None else {}
        out[code] = {"description": about or ("Accepted" if code == 202 else "Success"), **body}
    for code in errors:
        out[code] = STATUS[code]
    return out


def raw_body(
    media_types: tuple[str, ...], description: str, schema: dict[str, Any] | None = None
) -> Callable[[View], View]:
    """Document a request body the view reads itself (`request.get_data()`), e.g. a YAML playbook: `schema` is what
    the text holds once parsed (default: any text)."""

    def decorate(view: View) -> View:
        body = {"media_types": media_types, "description": description, "schema": schema or {"type": "string"}}
        setattr(view, BODY_ATTR, body)
        return view

    return decorate


def query_params(*params: dict[str, Any]) -> Callable[[View], View]:
    """Document query parameters a view reads itself (`request.args`), as OpenAPI parameter objects without `in`
    (`welead.api.schemas.param` builds them)."""

    def decorate(view: View) -> View:
        setattr(view, QUERY_ATTR, params)
        return view

    return decorate


def bounded(value: int, low: int, high: int, name: str) -> int:
    """`value`, or 400 naming `name` and its bounds."""
    if not low <= value <= high:
        abort(400, f"{name} must be between {low} and {high}")
    return value


def require(*roles: str) -> Principal:
    """403 unless the caller has one of `roles` (admin always may); views declare roles with `allow` instead."""
    who = principal()
    if who.role != "admin" and who.role not in roles:
        abort(403, f"role {who.role!r} may not do this")
    return who


def visible() -> ColumnElement[bool] | None:
    """The condition on `followers` the caller's reads add (None: sees everyone); scrm.access defines it."""
    return access.visible_followers(principal())


def get_follower(session: Session, openid: str) -> Follower:
    """The follower, or 404 when it does not exist or the caller may not see it (404, not 403: no existence leak)."""
    follower = followers.find(session, openid)
    if follower is None or not access.can_see(session, principal(), follower):
        abort(404, f"no follower {openid!r}")
    return follower

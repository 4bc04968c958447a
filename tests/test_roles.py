"""Roles by operations over every /api/v1 endpoint the app has (found in its url_map, so new ones are caught): each
declares its roles with `allow`, docs/roles.md says the same, a role left out gets 403 before anything else of the
request is read, a role let in never gets 401/403-for-its-role or a 5xx. Then what the scoped roles see."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.models import Follower, Rep
from scrm.playbook.models import Segment
from tests.helpers import post
from welead.api.access import roles_of
from welead.auth import ROLES, issue

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"openapi.spec", "openapi.docs", "docs_assets.static"}  # the document and its page need no token
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^`]*)` \|(.*)\|\s*$")
ROLE_MESSAGE = re.compile(r"^role '\w+' may not do this$")


def operations(app) -> list[tuple[str, str, str]]:
    """(method, path as documented, endpoint) for every /api/v1 operation."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint not in PUBLIC:
            path = re.sub(r"<([^<:>]+:)?([^>]+)>", r"{\2}", rule.rule)
            out += [(m, path, rule.endpoint) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(out)


def documented() -> dict[tuple[str, str], frozenset[str]]:
    """docs/roles.md's endpoint table: the roles whose cell is not —."""
    table = {}
    for line in (ROOT / "docs" / "roles.md").read_text().splitlines():
        if found := ROW.match(line):
            cells = [c.strip() for c in found.group(3).split("|")]
            assert len(cells) == len(ROLES), line
            table[(found.group(1), found.group(2))] = frozenset(
                r for r, c in zip(ROLES, cells, strict=True) if c != "—"
            )
    return table


def concrete(path: str) -> str:
    """A path with its parameters filled by values that name nothing."""
    return re.sub(r"\{[^}]+\}", lambda m: "999999" if m.group(0).endswith("_id}") or m.group(0) == "{number}"
                  else "nobody", path)  # fmt: skip


@pytest.fixture
def rep_ids(app) -> tuple[int, int]:
    with app.extensions["welead"].db.transaction() as s:
        s.add_all([Rep(id=7, userid="amy.w", name="Amy"), Rep(id=8, userid="bo.l", name="Bo")])
    return 7, 8


@pytest.fixture
def headers(app, rep_ids) -> dict[str, dict[str, str]]:
    with app.extensions["welead"].db.transaction() as s:
        tokens = {
            "marketer": issue(s, "mkt", "marketer"),
            "staff": issue(s, "booth", "staff", "expo"),
            "rep": issue(s, "amy-phone", "rep", "7"),
            "other-rep": issue(s, "bo-phone", "rep", "8"),
        }
    out = {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}
    return {"admin": {"Authorization": "Bearer test-admin-token"}, **out}


def test_every_endpoint_declares_its_roles(app):
    missing = [f"{m} {p} ({e})" for m, p, e in operations(app) if roles_of(app.view_functions[e]) is None]
    assert not missing, "declare roles with @allow(...) (welead/api/access.py, docs/api.md): " + ", ".join(missing)


def test_docs_roles_table_is_what_the_endpoints_declare(app):
    table, declared = documented(), {(m, p): roles_of(app.view_functions[e]) for m, p, e in operations(app)}
    assert sorted(set(declared) - set(table)) == [], "add these endpoints to docs/roles.md"
    assert sorted(set(table) - set(declared)) == [], "docs/roles.md names endpoints that do not exist"
    assert {k: v for k, v in declared.items() if table[k] != v} == {}


def test_role_matrix(app, client, live, headers):
    seen = 0
    for method, path, endpoint in operations(app):
        allowed = roles_of(app.view_functions[endpoint])
        for role in ROLES:
            r = client.open(concrete(path), method=method, headers=headers[role], json={} if method != "GET" else None)
            where = f"{role} {method} {path}: {r.status_code} {r.get_data(as_text=True)[:200]}"
            assert r.status_code < 500 and r.status_code != 401, where
            assert (r.is_json and {"error", "message"} <= set(r.json or {})) or r.status_code < 400, where
            if role in allowed:
                assert not (r.status_code == 403 and ROLE_MESSAGE.match(r.json["message"])), where
            else:
                assert r.status_code == 403 and ROLE_MESSAGE.match(r.json["message"]), where
            seen += 1
    assert seen >= 4 * 40


def test_no_token_or_a_bad_one_is_401_everywhere(app, client):
    for method, path, _ in operations(app):
        for auth in ({}, {"Authorization": "Bearer nope"}):
            r = client.open(concrete(path), method=method, headers=auth)
            assert r.status_code == 401 and r.json["error"] == "unauthorized", f"{method} {path}"


# --- what the scoped roles see ---------------------------------------------------------------------------------


def own(app, openid: str, rep: int) -> None:
    with app.extensions["welead"].db.transaction() as s:
        s.scalar(select(Follower).where(Follower.openid == openid)).owner_id = rep


@pytest.fixture
def people(app, client, rep_ids):
    """Amy's lead, Bo's lead, an expo booth visitor, an expo staff-code scanner, another event's visitor."""
    post(client, "subscribe", openid="o-amy", scene="campaign:spring")
    post(client, "subscribe", openid="o-bo")
    post(client, "subscribe", openid="o-booth", scene="booth:expo:A1")
    post(client, "subscribe", openid="o-staff")
    post(client, "scan", openid="o-staff", scene="staff:expo:B2")
    post(client, "subscribe", openid="o-other", scene="booth:expo2:A1")
    post(client, "scan", openid="o-bo", scene="booth:expox:A1")  # `expox` is not `expo`
    own(app, "o-amy", 7)
    own(app, "o-bo", 8)
    own(app, "o-booth", 8)


def listed(client, headers) -> list[str]:
    r = client.get("/api/v1/followers", headers=headers)
    assert r.status_code == 200, r.json
    return sorted(f["openid"] for f in r.json["items"])


def test_rep_reads_only_its_own_leads(client, headers, people):
    amy = headers["rep"]
    assert listed(client, amy) == ["o-amy"]
    for suffix in ("", "/timeline", "/score"):
        assert client.get(f"/api/v1/followers/o-amy{suffix}", headers=amy).status_code == 200
        r = client.get(f"/api/v1/followers/o-bo{suffix}", headers=amy)
        assert r.status_code == 404 and r.json["message"] == "no follower 'o-bo'"
    r = client.get("/api/v1/segments/preview?subscribed=true", headers=amy)
    assert r.status_code == 200 and r.json["count"] == 1 and [f["openid"] for f in r.json["items"]] == ["o-amy"]
    assert client.get("/api/v1/deliveries?openid=o-bo", headers=amy).status_code == 404
    assert client.get("/api/v1/deliveries?openid=o-amy", headers=amy).json["items"] == []


def test_staff_reads_only_its_events_visitors(client, headers, people):
    staff = headers["staff"]
    assert listed(client, staff) == ["o-booth", "o-staff"]
    for openid in ("o-booth", "o-staff"):
        for suffix in ("", "/timeline", "/score"):
            assert client.get(f"/api/v1/followers/{openid}{suffix}", headers=staff).status_code == 200
    for openid in ("o-amy", "o-bo", "o-other", "nobody"):
        for suffix in ("", "/timeline", "/score"):
            assert client.get(f"/api/v1/followers/{openid}{suffix}", headers=staff).status_code == 404
    assert listed(client, headers["marketer"]) == ["o-amy", "o-bo", "o-booth", "o-other", "o-staff"]


def test_a_rep_does_not_see_saved_segments_it_did_not_save(app, client, headers, people):
    body = {"name": "bo's hot ones", "filter": {"openids": ["o-bo"], "owner": 8}}
    created = client.post("/api/v1/segments", json=body, headers=headers["marketer"])
    assert created.status_code == 201
    with app.extensions["welead"].db.transaction() as s:
        s.add(Segment(name="amy's", filter={"subscribed": True}, created_by="rep:7", created_at=utcnow()))
    names = lambda h: [s["name"] for s in client.get("/api/v1/segments", headers=h).json["items"]]  # noqa: E731
    assert names(headers["marketer"]) == ["amy's", "bo's hot ones"]
    assert names(headers["rep"]) == ["amy's"] and names(headers["other-rep"]) == []
    seg = created.json["id"]
    for ref in (seg, "bo's hot ones"):
        r = client.get(f"/api/v1/segments/{ref}", headers=headers["rep"])
        assert r.status_code == 404 and "o-bo" not in r.get_data(as_text=True)
    mine = client.get("/api/v1/segments/amy's", headers=headers["rep"]).json
    assert mine["count"] == 1 and [f["openid"] for f in mine["items"]] == ["o-amy"]


def test_forbidden_role_gets_403_before_its_body_is_read(client, headers):
    r = client.put("/api/v1/playbook", data=b"rules: [", headers=headers["staff"])
    assert r.status_code == 403
    r = client.post(
        "/api/v1/messages", data=b"{not json", headers={**headers["rep"], "Content-Type": "application/json"}
    )
    assert r.status_code == 403


def test_text_no_database_can_store_is_a_400(client, headers):
    for path in ("/api/v1/followers/o%00x", "/api/v1/followers?after=1&x=%00"):
        r = client.get(path, headers=headers["marketer"])
        assert r.status_code == 400 and r.json["error"] == "bad_request", path
    body = '{"name": "a\\ud800", "filter": {}}'
    r = client.post("/api/v1/segments", data=body, headers={**headers["marketer"], "Content-Type": "application/json"})
    assert r.status_code == 400
    deep = "[" * 5000 + "]" * 5000
    r = client.post("/api/v1/segments", data=deep, headers={**headers["marketer"], "Content-Type": "application/json"})
    assert r.status_code == 400


def test_ids_past_bigint_are_404_and_cursors_400(client, headers):
    big = 2**63
    assert client.get(f"/api/v1/deliveries/{big}", headers=headers["marketer"]).status_code == 404
    assert client.get(f"/api/v1/deliveries/{big - 1}", headers=headers["marketer"]).status_code == 404
    for path in ("/api/v1/broadcasts/3000000000", "/api/v1/playbook/versions/3000000000"):  # int4 on PostgreSQL
        r = client.get(path, headers=headers["marketer"])
        assert r.status_code == 404 and r.json["error"] == "not_found", path
    assert client.get(f"/api/v1/followers?after={big}", headers=headers["marketer"]).status_code == 400
    assert client.get(f"/api/v1/interactions/failed?after={big}", headers=headers["marketer"]).status_code == 400
    assert client.get(f"/api/v1/deliveries?before={big}", headers=headers["marketer"]).status_code == 422
    r = client.get("/api/v1/followers/x/timeline?before=9999-12-31T23:00:00-10:00", headers=headers["marketer"])
    assert r.status_code == 400

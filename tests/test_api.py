"""The admin API: bearer auth, follower JSON contract, paging, rep scoping, OpenAPI."""

import pytest

from tests.helpers import post
from welead.auth import issue


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic dXNlcjpwYXNz", "Bearer "])
def test_missing_or_invalid_token_is_401_json(client, header):
    headers = {"Authorization": header} if header else {}
    r = client.get("/api/v1/followers", headers=headers)
    assert r.status_code == 401
    assert r.json["error"] == "unauthorized"


def test_unknown_follower_is_404_json(client, auth_headers):
    r = client.get("/api/v1/followers/nobody", headers=auth_headers)
    assert r.status_code == 404 and r.json["error"] == "not_found"


def test_follower_contract(client, auth_headers):
    post(client, "subscribe", openid="o-c", scene="campaign:spring")
    body = client.get("/api/v1/followers/o-c", headers=auth_headers).json
    assert body["openid"] == "o-c" and body["subscribed"] is True
    assert body["tags"] == [] and isinstance(body["score"], int | float)
    assert body["stage"] == "new" and body["owner"] is None and body["source"] == "campaign:spring"


def test_followers_keyset_paging(client, auth_headers):
    for i in range(7):
        post(client, "subscribe", openid=f"o-page-{i}")
    seen, after = [], 0
    while True:
        r = client.get("/api/v1/followers", query_string={"limit": 3, "after": after}, headers=auth_headers).json
        seen += [f["openid"] for f in r["items"]]
        if r["next"] is None:
            break
        after = r["next"]
    assert seen == [f"o-page-{i}" for i in range(7)]


def test_paging_bounds_are_checked(client, auth_headers):
    r = client.get("/api/v1/followers", query_string={"limit": 0}, headers=auth_headers)
    assert r.status_code == 400
    r = client.get("/api/v1/followers", query_string={"limit": "many"}, headers=auth_headers)
    assert r.status_code in (400, 422)


def test_timeline_before_and_limit(client, auth_headers):
    for t in range(5):
        post(client, "text", openid="o-tl", content=f"m{t}", create_time=1_700_000_000 + t)
    r = client.get("/api/v1/followers/o-tl/timeline", query_string={"limit": 2}, headers=auth_headers).json
    assert [e["content"] for e in r] == ["m4", "m3"]
    older = client.get(
        "/api/v1/followers/o-tl/timeline",
        query_string={"before": r[-1]["at"]},
        headers=auth_headers,
    ).json
    assert [e["content"] for e in older] == ["m2", "m1", "m0"]


def test_rep_token_sees_only_own_leads(app, client):
    post(client, "wecom-add-contact", userid="rep-a", external_userid="wm-a")
    post(client, "wecom-add-contact", userid="rep-b", external_userid="wm-b")
    mine = client.get("/api/v1/followers/wm-a", headers={"Authorization": "Bearer test-admin-token"}).json["owner"]
    with app.extensions["welead"].db.transaction() as s:
        token = issue(s, "rep-a-phone", "rep", subject=str(mine))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/followers/wm-a", headers=headers).status_code == 200
    assert client.get("/api/v1/followers/wm-b", headers=headers).status_code == 404
    items = client.get("/api/v1/followers", headers=headers).json["items"]
    assert [f["openid"] for f in items] == ["wm-a"]


def test_tokens_are_stored_hashed(app):
    from scrm.models import ApiToken

    with app.extensions["welead"].db.sessions() as s:
        hashes = [t.token_hash for t in s.query(ApiToken)]
    assert "test-admin-token" not in hashes and all(len(h) == 64 for h in hashes)


def test_openapi_document_is_generated(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/followers", "/api/v1/followers/{openid}", "/api/v1/followers/{openid}/timeline"):
        assert path in spec["paths"], path
    assert "BearerAuth" in spec["components"]["securitySchemes"]


def test_healthz(client):
    assert client.get("/healthz").json == {
        "status": "ok", "database": "ok", "redis": "ok", "backlog": 0, "lag_seconds": 0.0, "failed": 0,
    }  # fmt: skip


def test_cli_token_issue(runner):
    result = runner.invoke(args=["tokens", "issue", "marketing-bot", "--role", "marketer"])
    assert result.exit_code == 0 and len(result.output.strip()) > 30

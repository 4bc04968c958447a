"""Through the API as an admin would: deactivate a rep (PATCH), watch its leads move (transfers, timelines), see what
WeCom refused, hand the rest over again as a resigned member's; a rep token sees only its own moves."""

import pytest

from tests.handover_kit import add_leads, owners, run_jobs, sandbox, svc
from tests.helpers import post
from wechat import sandbox_transfer
from welead.auth import issue

TRANSFER = "wecom/externalcontact/transfer_customer"


def token(app, role: str, subject: str | None = None) -> dict[str, str]:
    with svc(app).db.transaction() as s:
        return {"Authorization": f"Bearer {issue(s, f'{role}-{subject}', role, subject)}"}


@pytest.fixture
def reps(client, auth_headers):
    made = [client.post("/api/v1/reps", json={"userid": u}, headers=auth_headers).json["id"] for u in ("lea", "amy")]
    return tuple(made)


def deactivate(client, auth_headers, rep_id: int) -> None:
    answer = client.patch(f"/api/v1/reps/{rep_id}", json={"active": False}, headers=auth_headers)
    assert answer.status_code == 200, answer.json


def test_deactivation_moves_oa_and_wecom_leads(app, client, live, auth_headers, reps):
    lea, amy = reps
    post(client, "wecom-add-contact", userid="lea", external_userid="wm-api-1")  # lea's customer in WeCom
    (oa,) = add_leads(app, lea, 1)
    deactivate(client, auth_headers, lea)
    run_jobs(app)
    lead = client.get("/api/v1/followers/wm-api-1", headers=auth_headers).json
    assert lead["owner"] == amy
    timeline = client.get("/api/v1/followers/wm-api-1/timeline", headers=auth_headers).json
    moved = next(e for e in timeline if e["kind"] == "owner_assigned")
    assert moved["data"]["via"] == "transfer" and moved["data"]["from"] == lea
    page = client.get(f"/api/v1/reps/{lea}/transfers", headers=auth_headers).json
    assert {(t["channel"], t["state"], t["to_rep"]) for t in page["items"]} == {("oa", "done", amy),
                                                                              ("wecom", "waiting", amy)}  # fmt: skip
    assert owners(app, [oa]) == {oa: amy}
    (call,) = sandbox(app).sent(TRANSFER)
    assert call["body"] == {"handover_userid": "lea", "takeover_userid": "amy", "external_userid": ["wm-api-1"]}


def test_refused_transfers_are_listed_and_handed_over_again(app, client, live, auth_headers, reps):
    lea, amy = reps
    contacts = add_leads(app, lea, 2, channel="wecom")
    sandbox(app).fail_next(TRANSFER, count=1, errcode=40097)  # WeCom: lea is not an employee any more
    deactivate(client, auth_headers, lea)
    run_jobs(app)
    failed = client.get("/api/v1/transfers", query_string={"rep": lea, "state": "failed"}, headers=auth_headers).json
    assert [(t["errcode"], t["mode"]) for t in failed["items"]] == [(40097, "onjob")] * 2
    assert set(owners(app, contacts).values()) == {lea}  # given back: WeCom still has them with lea
    sandbox_transfer.resign(svc(app).redis_slow, "lea")
    again = client.post(f"/api/v1/reps/{lea}/reassign", json={"resigned": True}, headers=auth_headers)
    assert again.status_code == 202 and again.json["queued"] is True
    run_jobs(app)
    assert set(owners(app, contacts).values()) == {amy}
    waiting = client.get("/api/v1/transfers", query_string={"state": "waiting"}, headers=auth_headers).json["items"]
    assert [t["mode"] for t in waiting] == ["resigned"] * 2
    assert len(sandbox(app).sent("wecom/externalcontact/resigned/transfer_customer")) == 1


def test_reassign_refuses_active_and_unknown_reps(client, auth_headers, reps):
    lea, _ = reps
    assert client.post(f"/api/v1/reps/{lea}/reassign", json={}, headers=auth_headers).status_code == 409
    assert client.post("/api/v1/reps/999/reassign", json={}, headers=auth_headers).status_code == 404
    bad = client.post(f"/api/v1/reps/{lea}/reassign", json={"resigned": "maybe"}, headers=auth_headers)
    assert bad.status_code == 422


def test_bad_filters(client, auth_headers):
    assert client.get("/api/v1/transfers?state=lost", headers=auth_headers).status_code == 422
    assert client.get("/api/v1/transfers?limit=0", headers=auth_headers).status_code == 422
    assert client.get("/api/v1/reps/999/transfers", headers=auth_headers).status_code == 404


def test_a_rep_sees_only_its_own_moves(app, client, live, auth_headers, reps):
    lea, amy = reps
    add_leads(app, lea, 2)
    deactivate(client, auth_headers, lea)
    run_jobs(app)
    other = client.post("/api/v1/reps", json={"userid": "zed"}, headers=auth_headers).json["id"]
    mine = token(app, "rep", str(amy))
    theirs = token(app, "rep", str(other))
    assert len(client.get("/api/v1/transfers", headers=mine).json["items"]) == 2
    assert client.get("/api/v1/transfers", headers=theirs).json["items"] == []
    assert client.get(f"/api/v1/reps/{lea}/transfers", headers=theirs).status_code == 404
    assert client.get("/api/v1/transfers", query_string={"rep": lea}, headers=theirs).status_code == 404
    assert client.post(f"/api/v1/reps/{lea}/reassign", json={}, headers=mine).status_code == 403
    assert client.get("/api/v1/transfers", headers=token(app, "marketer")).status_code == 200

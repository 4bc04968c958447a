"""Reps through the admin API and `flask rep`: add, list, read, change, confirm, deactivate; the rules and the roles."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from scrm.models import Outbox
from tests.helpers import post
from welead.auth import issue

WEEKDAYS = {"weekly": {"mon": ["13:00-18:00", "09:00-12:00"]}, "exceptions": {"2026-10-01": []}}


def add(client, headers, **fields):
    r = client.post("/api/v1/reps", json=fields, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def token(app, role: str, subject: str | None = None) -> dict[str, str]:
    with app.extensions["welead"].db.transaction() as s:
        return {"Authorization": f"Bearer {issue(s, f'{role}-{subject}', role, subject)}"}


def reassign_rows(app) -> list[Outbox]:
    with app.extensions["welead"].db.sessions() as s:
        return list(s.scalars(select(Outbox).where(Outbox.task == "rep.reassign").order_by(Outbox.id)))


def test_add_read_list_and_change(client, auth_headers):
    rep = add(client, auth_headers, userid="li.wei", name=" 李伟 ", weight=3, daily_cap=20, hours=WEEKDAYS)
    assert rep["name"] == "李伟" and rep["status"] == "active" and rep["confirmed"] is True
    assert rep["hours"]["weekly"]["mon"] == ["09:00-12:00", "13:00-18:00"]  # normalised by scrm.hours
    assert (rep["open_leads"], rep["assigned_today"], rep["open_cap"], rep["deactivated_at"]) == (0, 0, None, None)
    assert client.get(f"/api/v1/reps/{rep['id']}", headers=auth_headers).json == rep
    other = add(client, auth_headers, userid="wang.fang")
    assert other["name"] == "wang.fang" and other["weight"] == 1
    listed = client.get("/api/v1/reps", headers=auth_headers).json
    assert [r["userid"] for r in listed["items"]] == ["li.wei", "wang.fang"] and listed["next"] is None
    page = client.get("/api/v1/reps?limit=1", headers=auth_headers).json
    assert [r["id"] for r in page["items"]] == [rep["id"]] and page["next"] == rep["id"]
    r = client.patch(
        f"/api/v1/reps/{other['id']}", json={"manager_id": rep["id"], "open_cap": 50}, headers=auth_headers
    )
    assert r.status_code == 200 and (r.json["manager_id"], r.json["open_cap"]) == (rep["id"], 50)
    r = client.patch(f"/api/v1/reps/{other['id']}", json={"manager_id": None, "hours": None}, headers=auth_headers)
    assert r.json["manager_id"] is None and r.json["hours"] is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"name": "x"}, "userid is required"),
        ({"userid": ""}, "userid: a WeCom member id"),
        ({"userid": "-bad"}, "userid: a WeCom member id"),
        ({"userid": "a" * 65}, "userid: a WeCom member id"),
        ({"userid": "a", "weight": 0}, "weight must be an integer from 1 to 100"),
        ({"userid": "a", "weight": 101}, "weight must be an integer from 1 to 100"),
        ({"userid": "a", "weight": "3"}, "weight must be an integer"),
        ({"userid": "a", "weight": True}, "weight must be an integer"),
        ({"userid": "a", "daily_cap": -1}, "daily_cap must be an integer from 0"),
        ({"userid": "a", "active": "yes"}, "active must be true or false"),
        ({"userid": "a", "colour": "red"}, "unknown field(s): colour"),
        ({"userid": "a", "manager_id": 99}, "manager_id: no rep 99"),
        ({"userid": "a", "hours": {"weekly": {"mon": ["18:00-09:00"]}}}, "hours.weekly.mon: '18:00-09:00'"),
        ({"userid": "a", "hours": {"weekly": {"funday": []}}}, "hours.weekly: keys are days"),
        ({"userid": "a", "hours": {"exceptions": {"2026-13-01": []}}}, "is not a date"),
        ({"userid": "a", "name": "n" * 129}, "name must be text of at most 128"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, auth_headers, fields, words):
    r = client.post("/api/v1/reps", json=fields, headers=auth_headers)
    assert r.status_code == 400 and words in r.json["message"], r.json
    assert client.get("/api/v1/reps", headers=auth_headers).json["items"] == []


def test_a_body_that_is_not_an_object(client, auth_headers):
    r = client.post("/api/v1/reps", json=["li.wei"], headers=auth_headers)
    assert r.status_code == 400 and "JSON object" in r.json["message"]


def test_userid_is_unique(client, auth_headers):
    first = add(client, auth_headers, userid="li.wei")
    r = client.post("/api/v1/reps", json={"userid": "li.wei"}, headers=auth_headers)
    assert r.status_code == 409 and f"belongs to rep {first['id']}" in r.json["message"]
    second = add(client, auth_headers, userid="wang.fang")
    r = client.patch(f"/api/v1/reps/{second['id']}", json={"userid": "li.wei"}, headers=auth_headers)
    assert r.status_code == 409
    r = client.patch(f"/api/v1/reps/{second['id']}", json={"userid": "wang.fang2"}, headers=auth_headers)
    assert r.status_code == 200 and r.json["userid"] == "wang.fang2"


def test_manager_is_another_rep_and_never_a_cycle(client, auth_headers):
    a, b, c = (add(client, auth_headers, userid=u)["id"] for u in ("a", "b", "c"))
    patch = lambda rep, manager: client.patch(f"/api/v1/reps/{rep}", json={"manager_id": manager}, headers=auth_headers)  # noqa: E731
    assert patch(a, a).json["message"] == "manager_id: a rep cannot manage itself"
    assert patch(b, a).status_code == 200  # a manages b
    assert patch(c, b).status_code == 200  # b manages c
    r = patch(a, c)  # c would manage a: a → c → b → a
    assert r.status_code == 400 and "a cycle" in r.json["message"]
    assert patch(a, 404).json["message"] == "manager_id: no rep 404"
    assert client.get(f"/api/v1/reps/{a}", headers=auth_headers).json["manager_id"] is None


def test_unknown_rep_is_404(client, auth_headers):
    assert client.get("/api/v1/reps/77", headers=auth_headers).status_code == 404
    assert client.patch("/api/v1/reps/77", json={"name": "x"}, headers=auth_headers).status_code == 404
    assert client.get(f"/api/v1/reps/{2**40}", headers=auth_headers).status_code == 404  # past the 32-bit column
    assert client.get(f"/api/v1/reps?after={2**40}", headers=auth_headers).json == {"items": [], "next": None}


def test_reps_first_seen_in_a_wecom_callback_are_unconfirmed_until_confirmed(client, auth_headers):
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid="wm-1")
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid="wm-2")
    (rep,) = client.get("/api/v1/reps?status=unconfirmed", headers=auth_headers).json["items"]
    assert (rep["userid"], rep["status"], rep["confirmed"], rep["active"]) == ("zhao.lei", "unconfirmed", False, True)
    assert (rep["open_leads"], rep["assigned_today"]) == (2, 2)
    assert client.get("/api/v1/reps?status=active", headers=auth_headers).json["items"] == []
    r = client.patch(f"/api/v1/reps/{rep['id']}", json={"confirmed": True, "name": "赵磊"}, headers=auth_headers)
    assert r.status_code == 200 and r.json["status"] == "active" and r.json["name"] == "赵磊"
    assert client.get("/api/v1/reps?status=unconfirmed", headers=auth_headers).json["items"] == []
    assert client.get("/api/v1/reps?status=nope", headers=auth_headers).status_code == 400
    assert client.get("/api/v1/reps?limit=0", headers=auth_headers).status_code == 400


def test_deactivating_queues_one_reassignment_per_deactivation(app, client, auth_headers):
    rep = add(client, auth_headers, userid="li.wei")
    url = f"/api/v1/reps/{rep['id']}"
    r = client.patch(url, json={"active": False}, headers=auth_headers)
    assert r.status_code == 200 and r.json["status"] == "inactive" and r.json["deactivated_at"]
    (row,) = reassign_rows(app)
    assert row.args == {"rep_id": rep["id"]} and row.key.startswith(f"rep.reassign:{rep['id']}:")
    assert client.patch(url, json={"active": False}, headers=auth_headers).status_code == 200
    assert len(reassign_rows(app)) == 1  # already inactive: nothing more to reassign
    r = client.patch(url, json={"active": True}, headers=auth_headers)
    assert r.json["status"] == "active" and r.json["deactivated_at"] is None
    client.patch(url, json={"active": False}, headers=auth_headers)
    first, second = reassign_rows(app)
    assert first.key != second.key
    assert client.get("/api/v1/reps?status=inactive", headers=auth_headers).json["items"][0]["id"] == rep["id"]


def test_a_rejected_change_changes_nothing(app, client, auth_headers):
    rep = add(client, auth_headers, userid="li.wei", weight=2)
    r = client.patch(f"/api/v1/reps/{rep['id']}", json={"active": False, "weight": 0}, headers=auth_headers)
    assert r.status_code == 400
    assert client.get(f"/api/v1/reps/{rep['id']}", headers=auth_headers).json["status"] == "active"
    assert reassign_rows(app) == []


def test_roles(app, client, auth_headers):
    mine = add(client, auth_headers, userid="li.wei")["id"]
    other = add(client, auth_headers, userid="wang.fang")["id"]
    rep = token(app, "rep", str(mine))
    assert client.get(f"/api/v1/reps/{mine}", headers=rep).json["userid"] == "li.wei"
    assert client.get(f"/api/v1/reps/{other}", headers=rep).status_code == 404
    assert [r["id"] for r in client.get("/api/v1/reps", headers=rep).json["items"]] == [mine]
    assert client.patch(f"/api/v1/reps/{mine}", json={"weight": 100}, headers=rep).status_code == 403
    assert client.post("/api/v1/reps", json={"userid": "x"}, headers=rep).status_code == 403
    staff = token(app, "staff", "expo")
    assert client.get("/api/v1/reps", headers=staff).status_code == 403
    assert client.get(f"/api/v1/reps/{mine}", headers=staff).status_code == 403
    marketer = token(app, "marketer")
    assert client.post("/api/v1/reps", json={"userid": "zhao.lei"}, headers=marketer).status_code == 201
    assert client.patch(f"/api/v1/reps/{other}", json={"weight": 5}, headers=marketer).json["weight"] == 5
    assert client.get("/api/v1/reps").status_code == 401


def test_openapi_documents_the_rep_endpoints(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/reps", "/api/v1/reps/{rep_id}", "/api/v1/reps/{rep_id}/codes"):
        assert path in paths, path
    assert "image/png" in paths["/api/v1/reps/{rep_id}/qrcode.png"]["get"]["responses"]["200"]["content"]
    assert {"201", "409", "422", "502"} <= set(paths["/api/v1/reps/{rep_id}/codes"]["post"]["responses"])
    assert paths["/api/v1/reps/{rep_id}"]["patch"]["x-roles"] == ["admin", "marketer"]
    assert "RepIn" in json.dumps(paths["/api/v1/reps"]["post"]["requestBody"])
    fields = client.get("/api/v1/openapi.json").json["components"]["schemas"]["RepIn"]["properties"]
    assert {"userid", "weight", "manager_id", "daily_cap", "open_cap", "hours", "confirmed"} <= set(fields)


# --- the CLI ----------------------------------------------------------------------------------------------------------


def test_cli_add_list_show_confirm_deactivate_activate(app, client, runner, tmp_path):
    hours = tmp_path / "hours.yml"
    hours.write_text("weekly:\n  mon: ['09:00-18:00']\nexceptions:\n  '2026-10-01': []\n")
    r = runner.invoke(args=["rep", "add", "li.wei", "--name", "李伟", "--weight", "4", "--hours", str(hours)])
    assert r.exit_code == 0 and r.output.startswith("rep 1 added: li.wei (李伟)"), r.output
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid="wm-1")
    r = runner.invoke(args=["rep", "list"])
    assert "li.wei" in r.output and "weight 4" in r.output and "unconfirmed" in r.output
    r = runner.invoke(args=["rep", "list", "--status", "unconfirmed"])
    assert "zhao.lei" in r.output and "li.wei" not in r.output and "leads 1 (+1 today)" in r.output
    shown = json.loads(runner.invoke(args=["rep", "show", "1"]).output)
    assert shown["hours"]["weekly"] == {"mon": ["09:00-18:00"]} and shown["codes"]["oa"] is None
    assert "is active" in runner.invoke(args=["rep", "confirm", "2"]).output
    assert "no reps with status unconfirmed" in runner.invoke(args=["rep", "list", "--status", "unconfirmed"]).output
    r = runner.invoke(args=["rep", "deactivate", "1"])
    assert r.exit_code == 0 and "deactivated at" in r.output and "queued for reassignment" in r.output
    assert len(reassign_rows(app)) == 1
    assert "was inactive already" in runner.invoke(args=["rep", "deactivate", "1"]).output
    assert len(reassign_rows(app)) == 1
    assert "is active" in runner.invoke(args=["rep", "activate", "1"]).output
    assert "(active already)" in runner.invoke(args=["rep", "activate", "1"]).output


def test_cli_refusals_exit_1_with_the_reason(runner):
    assert runner.invoke(args=["rep", "add", "li.wei"]).exit_code == 0
    r = runner.invoke(args=["rep", "add", "li.wei"])
    assert r.exit_code == 1 and "belongs to rep 1 already" in r.output
    r = runner.invoke(args=["rep", "add", "wang.fang", "--weight", "500"])
    assert r.exit_code == 1 and "weight must be an integer from 1 to 100" in r.output
    r = runner.invoke(args=["rep", "add", "wang.fang", "--hours", "{weekly: {mon: [nine-to-five]}}"])
    assert r.exit_code == 1 and "is not a slot like 09:00-18:00" in r.output
    r = runner.invoke(args=["rep", "show", "9"])
    assert r.exit_code == 1 and "no rep 9" in r.output
    assert runner.invoke(args=["rep", "deactivate", "9"]).exit_code == 1

"""Hostile input to the admin API answers 4xx JSON, never a 500: numbers beyond BIGINT, Unicode digits, lone
surrogates, NaN and infinities, deep JSON, chunked bodies over the cap; saved segments can be deleted, and rows
stored before such values were refused read back as valid JSON (issue 14: 3, 5, 6)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.delivery_models import Broadcast
from scrm.models import Interaction
from scrm.playbook.models import Segment
from tests.helpers import count, serve
from tests.test_hostile_playbook import send_chunked
from wechat.simulate import build_callback
from welead.auth import issue

HUGE = str(2**64)
JSON = {"Content-Type": "application/json"}


def clean(r, *codes: int) -> dict:
    """The answer is one of `codes`, as the API's JSON error shape (strict JSON: no NaN)."""
    assert r.status_code in codes, (r.status_code, r.data[:300])
    body = json.loads(r.data, parse_constant=_no_constant)
    assert "error" in body and "message" in body
    return body


def _no_constant(name: str):
    raise AssertionError(f"{name} in a JSON answer")


# --- 5. numbers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/segments/preview?after={HUGE}",
        "/api/v1/segments/preview?limit=³",
        "/api/v1/segments/preview?after=³",
        f"/api/v1/segments/preview?owner={HUGE}",
        "/api/v1/segments/preview?owner=³",
        "/api/v1/segments/preview?active_after=99999999999d",
        "/api/v1/segments/preview?active_before=99999999999999999999999m",
        "/api/v1/segments/preview?did=click&did_since=99999999999d",
        "/api/v1/segments/preview?score=engagement:" + "9" * 400 + "..",
        "/api/v1/followers/o-x/score?limit=³",
        f"/api/v1/followers/o-x/score?limit={HUGE}",
    ],
)
def test_out_of_range_and_unicode_numbers_in_queries_are_400(client, auth_headers, url):
    clean(client.get(url, headers=auth_headers), 400, 422)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", f"/api/v1/segments/{HUGE}"),
        ("get", "/api/v1/segments/³"),
        ("get", "/api/v1/segments/3000000000"),  # beyond the INTEGER column
        ("delete", f"/api/v1/segments/{HUGE}"),
        ("get", f"/api/v1/playbook/versions/{HUGE}"),
        ("get", f"/api/v1/deliveries/{HUGE}"),
        ("get", f"/api/v1/broadcasts/{HUGE}"),
        ("post", f"/api/v1/interactions/{HUGE}/retry"),
    ],
)
def test_ids_beyond_bigint_are_404(client, auth_headers, method, url):
    clean(getattr(client, method)(url, headers=auth_headers), 404)


# --- 5, 6. JSON bodies ------------------------------------------------------------------------------------------


def segment_body(filter_json: str, name: str = '"hot"') -> str:
    return '{"name": %s, "filter": %s}' % (name, filter_json)  # noqa: UP031  (raw JSON text, not a dict)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (segment_body('{"score": {"engagement": {"min": NaN}}}'), "NaN"),
        (segment_body('{"score": {"engagement": {"max": Infinity}}}'), "Infinity"),
        (segment_body('{"score": {"engagement": {"min": -Infinity}}}'), "Infinity"),
        (segment_body('{"score": {"engagement": {"min": 1e999}}}'), "too large"),
        (segment_body("{}", name='"\\ud800"'), "surrogate"),
        (segment_body('{"tags_any": ["\\udfff"]}'), "surrogate"),
        (segment_body("[" * 2000 + "]" * 2000), "nested deeper"),
    ],
    ids=["nan", "inf", "-inf", "1e999", "surrogate-name", "surrogate-tag", "deep"],
)
def test_hostile_json_bodies_are_400_and_nothing_is_saved(app, client, auth_headers, body, why):
    assert why in clean(client.post("/api/v1/segments", data=body, headers={**auth_headers, **JSON}), 400)["message"]
    assert count(app, Segment) == 0


def test_finite_filters_still_save(client, auth_headers):
    body = segment_body('{"score": {"engagement": {"min": 1.5e3}}, "owner": "none"}')
    r = client.post("/api/v1/segments", data=body, headers={**auth_headers, **JSON})
    assert r.status_code == 201 and r.json["filter"] == {"score": {"engagement": {"min": 1500.0}}, "owner": "none"}


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"owner": 2**64}, "owner"),
        ({"active_after": "99999999999d"}, "longer than"),
        ({"did": {"kind": "click", "since": "99999999999d"}}, "longer than"),
    ],
)
def test_out_of_range_values_in_json_filters_are_400(app, client, auth_headers, spec, why):
    r = client.post("/api/v1/segments", json={"name": "x", "filter": spec}, headers=auth_headers)
    assert why in clean(r, 400)["message"]
    assert count(app, Segment) == 0


def test_a_segment_string_holding_deep_json_is_refused_cleanly(client, auth_headers):
    deep = '{"a":' * 2000 + "1" + "}" * 2000
    r = client.post("/api/v1/broadcasts", json={"segment": deep, "template": "event_reminder"}, headers=auth_headers)
    assert "nested deeper" in clean(r, 400, 422)["message"]


def test_the_cli_refuses_non_finite_json_filters(runner):
    for text in ('{"score": {"engagement": {"min": NaN}}}', '{"score": {"engagement": {"min": 1e999}}}'):
        result = runner.invoke(args=["segment", "count", text])
        assert result.exit_code == 1 and "not valid JSON" in result.output and "Traceback" not in result.output


# --- 6. deleting saved segments, and rows stored before the checks ------------------------------------------------


def save(client, headers, name: str = "hot") -> dict:
    r = client.post("/api/v1/segments", json={"name": name, "filter": {"tags_any": ["vip"]}}, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def test_delete_a_saved_segment_by_name_or_id(client, auth_headers):
    hot, warm = save(client, auth_headers), save(client, auth_headers, "warm")
    r = client.delete("/api/v1/segments/hot", headers=auth_headers)
    assert r.status_code == 200 and r.json["id"] == hot["id"] and r.json["deleted"] is True
    assert client.delete(f"/api/v1/segments/{warm['id']}", headers=auth_headers).status_code == 200
    clean(client.get("/api/v1/segments/hot", headers=auth_headers), 404)
    clean(client.delete("/api/v1/segments/hot", headers=auth_headers), 404)
    assert client.get("/api/v1/segments", headers=auth_headers).json["items"] == []


def test_deleting_needs_a_marketer(app, client, auth_headers):
    save(client, auth_headers)
    with app.extensions["welead"].db.transaction() as s:
        token = issue(s, "rep-7", "rep", "7")
    clean(client.delete("/api/v1/segments/hot", headers={"Authorization": f"Bearer {token}"}), 403)
    clean(client.delete("/api/v1/segments/hot"), 401)


def test_a_segment_a_running_broadcast_reads_cannot_be_deleted(app, client, auth_headers):
    save(client, auth_headers)
    with app.extensions["welead"].db.transaction() as s:
        s.add(Broadcast(template="event_reminder", channel="template", segment="hot", created_at=utcnow()))
    assert "still fanning out" in clean(client.delete("/api/v1/segments/hot", headers=auth_headers), 409)["message"]
    with app.extensions["welead"].db.transaction() as s:
        s.scalar(select(Broadcast)).fanned_out_at = utcnow()
    assert client.delete("/api/v1/segments/hot", headers=auth_headers).status_code == 200


def test_the_cli_deletes_a_saved_segment(client, auth_headers, runner):
    save(client, auth_headers)
    result = runner.invoke(args=["segment", "delete", "hot"])
    assert result.exit_code == 0 and "deleted" in result.output
    result = runner.invoke(args=["segment", "delete", "hot"])
    assert result.exit_code == 1 and "no saved segment" in result.output


def test_a_stored_non_finite_filter_reads_as_valid_json_and_can_be_deleted(app, client, auth_headers):
    if app.extensions["welead"].db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's jsonb never held NaN: no such rows there")
    with app.extensions["welead"].db.transaction() as s:
        s.add(Segment(name="old", filter={"score": {"engagement": {"min": float("nan")}}}, created_at=utcnow()))
    r = client.get("/api/v1/segments", headers=auth_headers)
    assert r.status_code == 200
    (item,) = json.loads(r.data, parse_constant=_no_constant)["items"]
    assert item["filter"] == {"score": {"engagement": {"min": None}}}
    assert "finite" in clean(client.get("/api/v1/segments/old", headers=auth_headers), 400)["message"]
    assert client.delete("/api/v1/segments/old", headers=auth_headers).status_code == 200


# --- 3. chunked bodies over the cap, everywhere -----------------------------------------------------------------


def test_chunked_json_over_the_cap_is_413_and_nothing_is_saved(app, auth_headers):
    cap = app.config["MAX_CONTENT_LENGTH"]
    names = json.dumps(["vip"] * (cap // 6))
    body = ('{"name": "big", "filter": {"tags_any": %s}}' % names).encode()  # noqa: UP031
    assert len(body) > cap
    headers = {**auth_headers, **JSON, "Transfer-Encoding": "chunked"}
    with serve(app) as base:
        assert send_chunked(base, "/api/v1/segments", body, headers, "POST")[0] == 413
        small = json.dumps({"name": "small", "filter": {"tags_any": ["vip"]}}).encode()
        assert send_chunked(base, "/api/v1/segments", small, headers, "POST")[0] == 201
    with app.extensions["welead"].db.sessions() as s:
        assert [r.name for r in s.scalars(select(Segment))] == ["small"]


def test_chunked_callback_over_the_cap_is_413_and_nothing_is_recorded(app):
    settings = app.extensions["welead"].settings
    query, body = build_callback("text", settings, content="x" * (70 * 1024))
    path = "/wechat/callback?" + "&".join(f"{k}={v}" for k, v in query.items())
    with serve(app) as base:
        status, _ = send_chunked(base, path, body, {"Transfer-Encoding": "chunked"}, "POST")
    assert status == 413
    assert count(app, Interaction) == 0

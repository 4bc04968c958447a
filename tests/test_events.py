"""Events and booths through the API and `flask event`: create, read, change, the booths' OA codes made against
the sandbox (temporary until the end, or permanent; refused clearly when WeChat's 30 days cannot be met), and the
printable PDF read back with pypdf (Chinese names are real text)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader

from tests.events_kit import iso, make_event
from wechat.sandbox_state import SandboxControl

OA_QR = "oa/qrcode/create"


@pytest.fixture
def sandbox(app) -> SandboxControl:
    return SandboxControl(app.extensions["welead"].redis_slow)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_create_makes_temporary_codes_until_the_end(client, live, auth_headers, sandbox):
    event = make_event(client, auth_headers)
    assert [b["scene"] for b in event["booths"]] == ["booth:expo:A1", "booth:expo:B2"]
    assert all(b["codes"]["complete"] for b in event["booths"])
    bodies = [call["body"] for call in sandbox.sent(OA_QR)]
    scenes = sorted(b["action_info"]["scene"]["scene_str"] for b in bodies)
    assert scenes == ["booth:expo:A1", "booth:expo:B2", "staff:expo:A1", "staff:expo:B2"]
    assert {b["action_name"] for b in bodies} == {"QR_STR_SCENE"}
    assert all(2 * 86400 - 120 < b["expire_seconds"] <= 2 * 86400 for b in bodies)  # the event ends in 2 days
    again = client.post("/api/v1/events/expo/codes", headers=auth_headers)
    assert again.status_code == 200 and again.json["made"] == 0  # nothing spent twice
    assert len(sandbox.sent(OA_QR)) == 4


def test_permanent_codes_and_far_events(client, live, auth_headers, sandbox):
    far = {"starts_at": iso(_now() + timedelta(days=60)), "ends_at": iso(_now() + timedelta(days=62))}
    event = make_event(client, auth_headers, slug="fair", booths=("X",), **far)
    codes = event["booths"][0]["codes"]
    assert not codes["complete"] and "30 days" in codes["error"] and "permanent" in codes["error"]
    assert sandbox.sent(OA_QR) == []
    r = client.post("/api/v1/events/fair/codes", headers=auth_headers)
    assert r.status_code == 409 and "30 days" in r.json["message"]
    assert client.get("/api/v1/events/fair/codes.pdf", headers=auth_headers).status_code == 409
    assert client.patch("/api/v1/events/fair", json={"code_kind": "permanent"}, headers=auth_headers).status_code == 200
    r = client.post("/api/v1/events/fair/codes", headers=auth_headers)
    assert r.status_code == 200 and r.json["made"] == 2
    assert {c["body"]["action_name"] for c in sandbox.sent(OA_QR)} == {"QR_LIMIT_STR_SCENE"}
    assert r.json["event"]["booths"][0]["codes"]["expires_at"] is None


def test_ended_event_gets_no_temporary_codes(client, auth_headers):
    past = {"starts_at": iso(_now() - timedelta(days=3)), "ends_at": iso(_now() - timedelta(days=1))}
    event = make_event(client, auth_headers, slug="old", booths=("A",), **past)
    assert "has ended" in event["booths"][0]["codes"]["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"slug": "bad slug"}, "slug"),
        ({"slug": "x" * 25}, "slug"),
        ({"slug": "ok"}, "starts_at and ends_at are required"),
        ({"slug": "ok", "starts_at": "tomorrow", "ends_at": "2026-01-01T00:00:00Z"}, "ISO 8601"),
        ({"slug": "ok", "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}, "after"),
        ({"slug": "ok", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z", "code_kind": "x"},
         "code_kind"),
        ({"slug": "ok", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z",
          "booths": [{"slug": "A:1"}]}, "booth slug"),
        ({"slug": "ok", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z",
          "booths": [{"slug": "A", "reply": {"html": "<b>"}}]}, "reply"),
    ],
)  # fmt: skip
def test_bad_events_are_refused_and_nothing_is_kept(client, auth_headers, body, words):
    r = client.post("/api/v1/events", json=body, headers=auth_headers)
    assert r.status_code == 400 and words in r.json["message"], r.json
    assert client.get("/api/v1/events", headers=auth_headers).json["items"] == []


def test_read_change_and_booths(client, auth_headers):
    make_event(client, auth_headers)
    assert client.post("/api/v1/events", json={"slug": "expo"}, headers=auth_headers).status_code == 409
    r = client.patch("/api/v1/events/expo", json={"name": "Expo 2026"}, headers=auth_headers)
    assert r.status_code == 200 and r.json["name"] == "Expo 2026"
    assert client.patch("/api/v1/events/expo", json={"slug": "other"}, headers=auth_headers).status_code == 400
    r = client.post("/api/v1/events/expo/booths", json={"slug": "C3", "name": "C3"}, headers=auth_headers)
    assert r.status_code == 201 and [b["slug"] for b in r.json["booths"]] == ["A1", "B2", "C3"]
    assert client.post("/api/v1/events/expo/booths", json={"slug": "C3"}, headers=auth_headers).status_code == 409
    news = {"reply": {"articles": [{"title": "Catalogue", "url": "https://example.com/c"}]}}
    r = client.patch("/api/v1/events/expo/booths/C3", json=news, headers=auth_headers)
    assert r.status_code == 200 and r.json["booths"][2]["reply"]["articles"][0]["title"] == "Catalogue"
    assert client.patch("/api/v1/events/expo/booths/ZZ", json={}, headers=auth_headers).status_code == 404
    assert client.get("/api/v1/events/nope", headers=auth_headers).status_code == 404
    listed = client.get("/api/v1/events/expo/booths", headers=auth_headers).json["items"]
    assert [b["staff_scene"] for b in listed] == ["staff:expo:A1", "staff:expo:B2", "staff:expo:C3"]


def _pdf_text(data: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(data))
    return ["".join(page.extract_text().replace("\x00", "").split()) for page in reader.pages]


def test_codes_pdf_one_per_page_and_as_a_sheet(client, live, auth_headers):
    make_event(client, auth_headers)
    r = client.get("/api/v1/events/expo/codes.pdf", headers=auth_headers)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    pages = _pdf_text(r.data)
    assert len(pages) == 4  # two booths, a visitor and a staff code each
    assert "展位A1" in pages[0] and "华东展会Expo" in pages[0] and "扫码签到" in pages[0]
    assert "booth:expo:A1" in pages[0] and "staff:expo:A1" in pages[1] and "工作人员码" in pages[1]
    assert "展位B2" in pages[2]
    sheet = client.get("/api/v1/events/expo/codes.pdf?layout=sheet", headers=auth_headers)
    (page,) = _pdf_text(sheet.data)
    assert all(s in page for s in ("booth:expo:A1", "staff:expo:A1", "booth:expo:B2", "staff:expo:B2"))
    assert client.get("/api/v1/events/expo/codes.pdf?layout=poster", headers=auth_headers).status_code == 400


def test_cli_add_list_codes(runner, live, tmp_path):
    ends = (_now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    out = runner.invoke(args=["event", "add", "cli", "--name", "Fair", "--starts", "2026-01-01T00:00:00Z",
                              "--ends", ends, "--booth", "A=展位 A", "--booth", "B"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "booth:cli:A" in out.output and "codes ready" in out.output
    listed = runner.invoke(args=["event", "list"])
    assert "展位 A" in listed.output
    pdf = tmp_path / "codes.pdf"
    out = runner.invoke(args=["event", "codes", "cli", "-o", str(pdf), "--layout", "sheet"])
    assert out.exit_code == 0 and "0 code(s) made" in out.output
    assert "staff:cli:B" in _pdf_text(pdf.read_bytes())[0]
    bad = runner.invoke(args=["event", "add", "cli", "--starts", "2026-01-01T00:00:00Z", "--ends", ends])
    assert bad.exit_code == 1 and "exists already" in bad.output
    assert runner.invoke(args=["event", "codes", "nope"]).exit_code == 1

"""What event staff read: stats per booth and hour, the live page, leads as CSV and XLSX parsed back; a staff token
sees only its event, and phone numbers are masked except for admins and that event's staff."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from scrm.event_models import Booth, Event, EventLead
from scrm.models import Follower
from tests.events_kit import make_event, scan
from welead.auth import issue


def _token(app, name: str, role: str, subject: str | None = None) -> dict[str, str]:
    with app.extensions["welead"].db.transaction() as session:
        return {"Authorization": f"Bearer {issue(session, name, role, subject)}"}


def _lead(app, openid: str, booth: str, name: str, mobile: str, company: str = "ACME", **fields) -> None:
    """A completed form as the form flow writes it (forms helper's effect; here the row itself)."""
    with app.extensions["welead"].db.transaction() as session:
        fid = session.scalar(select(Follower.id).where(Follower.openid == openid))
        event_id, booth_id = session.execute(
            select(Event.id, Booth.id).join(Booth, Booth.event_id == Event.id).where(Booth.slug == booth)
        ).one()
        session.add(EventLead(event_id=event_id, booth_id=booth_id, follower_id=fid, name=name, company=company,
                              mobile=mobile, fields={"name": name, "mobile": mobile, **fields},
                              at=datetime.now(UTC).replace(tzinfo=None)))  # fmt: skip


@pytest.fixture
def expo(app, client, auth_headers) -> None:
    make_event(client, auth_headers)
    make_event(client, auth_headers, slug="other", booths=("Z",))
    for i in range(3):
        scan(client, f"o-v{i}", "booth:expo:A1")
    scan(client, "o-v0", "booth:expo:A1")
    scan(client, "o-v0", "booth:expo:B2")
    scan(client, "o-z", "booth:other:Z")
    _lead(app, "o-v0", "A1", "王小明", "13812341234", role='=HYPERLINK("http://x")')
    _lead(app, "o-v1", "B2", "Ann", "13900001111", company="+cmd")


def test_stats_per_booth_and_hour(client, auth_headers, expo):
    r = client.get("/api/v1/events/expo/stats", headers=auth_headers)
    assert r.status_code == 200
    s = r.json
    assert (s["unique_visitors"], s["checkins"], s["scans"], s["leads"]) == (3, 4, 5, 2)
    assert s["converted_visitors"] == 2 and s["conversion"] == round(2 / 3, 4)
    a1, b2 = s["booths"]
    assert (a1["booth"], a1["checkins"], a1["scans"], a1["leads"]) == ("A1", 3, 4, 1)
    assert sum(a1["by_hour"].values()) == 3 and sum(b2["by_hour"].values()) == 1
    assert all(len(hour) == 16 for hour in a1["by_hour"])  # "2026-12-03T15:00", local time


def _csv(client, headers, slug="expo") -> list[dict[str, str]]:
    r = client.get(f"/api/v1/events/{slug}/leads.csv", headers=headers)
    assert r.status_code == 200 and r.mimetype == "text/csv", r.data[:200]
    assert r.data.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))


def test_csv_and_xlsx_masked_for_marketers_full_for_admins_and_staff(app, client, auth_headers, expo):
    admin = _csv(client, auth_headers)
    assert [(r["name"], r["mobile"], r["booth"]) for r in admin] == [("王小明", "13812341234", "A1"),
                                                                      ("Ann", "13900001111", "B2")]  # fmt: skip
    assert admin[0]["fields"] == 'role: =HYPERLINK("http://x")' and admin[1]["company"] == "'+cmd"  # defused
    marketer = _csv(client, _token(app, "mk", "marketer"))
    assert [r["mobile"] for r in marketer] == ["138****1234", "139****1111"]
    staff = _csv(client, _token(app, "st", "staff", "expo"))
    assert staff[0]["mobile"] == "13812341234"
    r = client.get("/api/v1/events/expo/leads.xlsx", headers=_token(app, "mk2", "marketer"))
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:6] == ("at", "booth", "booth_name", "name", "company", "mobile")
    assert rows[1][3:6] == ("王小明", "ACME", "138****1234") and sheet.title == "expo"
    assert rows[2][4] == "'+cmd"


def test_staff_token_sees_only_its_event(app, client, expo):
    staff = _token(app, "booth-crew", "staff", "expo")
    listed = client.get("/api/v1/events", headers=staff).json["items"]
    assert [e["slug"] for e in listed] == ["expo"]
    for path in ("", "/stats", "/leads.csv", "/leads.xlsx", "/booths", "/codes.pdf", "/live-link"):
        assert client.get(f"/api/v1/events/other{path}", headers=staff).status_code == 404, path
    assert client.get("/api/v1/events/expo/stats", headers=staff).status_code == 200
    assert client.patch("/api/v1/events/expo", json={"name": "x"}, headers=staff).status_code == 403
    assert client.post("/api/v1/events", json={"slug": "x"}, headers=staff).status_code == 403
    assert _csv(client, _token(app, "other-crew", "staff", "other"), "other") == []
    assert client.get("/api/v1/events", headers=_token(app, "r", "rep", "1")).status_code == 403


def test_live_page_by_signed_link_or_token(app, client, auth_headers, expo):
    url = client.get("/api/v1/events/expo/live-link", headers=auth_headers).json["url"]
    path = url[url.index("/events/") :]
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.data.decode()
    assert (
        'http-equiv="refresh"' in page
        and "展位 A1" in page
        and "<script" not in page
        and "http" not in page.split("<body>")[1]
    )  # fmt: skip  (no CDN, no outside link)
    assert "13812341234" not in page and "王小明" not in page
    assert client.get("/events/expo/live?t=forged").status_code == 403
    assert client.get(path.replace("/expo/", "/other/")).status_code == 403  # the link names its event
    assert client.get("/events/expo/live", headers=_token(app, "s-o", "staff", "other")).status_code == 403
    assert client.get("/events/expo/live", headers=_token(app, "s-e", "staff", "expo")).status_code == 200


def test_cli_export_csv_and_xlsx(runner, expo, tmp_path):
    out = tmp_path / "leads.csv"
    r = runner.invoke(args=["event", "export", "expo", "--format", "csv", "-o", str(out)])
    assert r.exit_code == 0 and "2 lead(s)" in r.output
    assert "13812341234" in out.read_text(encoding="utf-8-sig")
    book = tmp_path / "leads.xlsx"
    r = runner.invoke(args=["event", "export", "expo", "--format", "xlsx", "-o", str(book), "--masked"])
    assert r.exit_code == 0
    rows = list(load_workbook(book).active.iter_rows(values_only=True))
    assert [row[5] for row in rows[1:]] == ["138****1234", "139****1111"]
    assert runner.invoke(args=["event", "export", "nope", "-o", str(out)]).exit_code == 1

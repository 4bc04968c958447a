"""Segments: every filter key against a brute-force reference over a random population (hypothesis picks the
filters), the query-string form, bad filters, the API (preview, save, read, rep scope) and the CLI (count, export).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from werkzeug.datastructures import MultiDict

from scrm import audience, scoring, segments, tags
from scrm.event_models import Booth, Checkin, Event
from scrm.models import Follower, Interaction, Rep
from scrm.playbook import store

NOW = datetime(2026, 6, 1, 12, 0, 0)
DAY = 86400.0
TAGS = ["vip", "interest:pricing", "interest:cases", "checkin:expo:A1", "checkin:expo:B2", "checkin:fair", "churned"]
SOURCES = [None, "rep:1", "booth:expo:A1", "booth:expo:B2", "campaign:spring", "booth:fair:C3"]
STAGES = ["new", "engaged", "mql", "sql", "customer"]


@dataclass
class Person:
    id: int
    openid: str
    subscribed: bool
    stage: str
    owner: int | None
    source: str | None
    last_active: datetime | None
    tags: set[str] = field(default_factory=set)
    engagement: float = 0.0
    fit: float = 0.0
    clicks: list[tuple[str, datetime]] = field(default_factory=list)


def populate(db, n: int = 60, seed: int = 7) -> list[Person]:
    rnd = random.Random(seed)
    people = []
    with db.transaction() as session:
        session.execute(insert(Rep), [{"id": i, "userid": f"rep{i}", "name": f"rep{i}"} for i in (1, 2)])
        for i in range(n):
            p = Person(
                id=0, openid=f"oSeg{i:03d}", subscribed=rnd.random() < 0.8, stage=rnd.choice(STAGES),
                owner=rnd.choice([None, 1, 2]), source=rnd.choice(SOURCES),
                last_active=NOW - timedelta(days=rnd.randint(0, 90)) if rnd.random() < 0.9 else None,
                tags=set(rnd.sample(TAGS, rnd.randint(0, 3))),
            )  # fmt: skip
            f = Follower(openid=p.openid, subscribed=p.subscribed, stage=p.stage, owner_id=p.owner, source=p.source,
                         last_active_at=p.last_active, profile={})  # fmt: skip
            session.add(f)
            session.flush()
            p.id = f.id
            for name in p.tags:
                tags.add(session, f.id, name)
                if name.startswith("checkin:"):  # a check-in is a record (scrm.event_checkins), the tag a label
                    _checkin(session, f.id, name)
            _scores(session, rnd, p)
            _clicks(session, rnd, p)
            people.append(p)
    return people


def _checkin(session, follower_id: int, tag: str) -> None:
    event_slug, _, booth_slug = tag.removeprefix("checkin:").partition(":")
    event = session.scalar(select(Event).where(Event.slug == event_slug))
    if event is None:
        event = Event(slug=event_slug, name=event_slug, starts_at=NOW, ends_at=NOW + timedelta(days=1))
        session.add(event)
        session.flush()
    booth = session.scalar(select(Booth).where(Booth.event_id == event.id, Booth.slug == (booth_slug or "main")))
    if booth is None:
        booth = Booth(event_id=event.id, slug=booth_slug or "main", name="")
        session.add(booth)
        session.flush()
    session.add(Checkin(follower_id=follower_id, event_id=event.id, booth_id=booth.id, first_at=NOW, last_at=NOW))


def _scores(session, rnd: random.Random, p: Person) -> None:
    for j in range(rnd.randint(0, 3)):
        at, pts = NOW - timedelta(days=rnd.uniform(0, 40)), rnd.randint(-5, 40)
        scoring.award(session, follower_id=p.id, model="engagement", half_life=14 * DAY, points=pts, rule="r",
                      interaction_id=None, dedup=f"{p.id}:e{j}", now=at)  # fmt: skip
        p.engagement += pts * scoring.decay((NOW - at).total_seconds(), 14 * DAY)
    if rnd.random() < 0.5:
        pts = rnd.randint(1, 30)
        scoring.award(session, follower_id=p.id, model="fit", half_life=None, points=pts, rule="f",
                      interaction_id=None, dedup=f"{p.id}:f", now=NOW - timedelta(days=3))  # fmt: skip
        p.fit = pts


def _clicks(session, rnd: random.Random, p: Person) -> None:
    for j in range(rnd.randint(0, 2)):
        key, at = rnd.choice(["MENU_PRICING", "MENU_CASE"]), NOW - timedelta(days=rnd.randint(0, 60))
        session.execute(insert(Interaction).values(
            dedup_key=f"{p.openid}-{j}", channel="oa", kind="click", follower_id=p.id, openid=p.openid,
            event_key=key, payload={}, at=at, received_at=at,
        ))  # fmt: skip
        p.clicks.append((key, at))


def _glob(value: str | None, pattern: str) -> bool:
    return value is not None and fnmatchcase(value, pattern.replace("[", "[[]"))


def reference(p: Person, f: dict) -> bool:
    """The filter evaluated in Python, for comparison with the SQL."""
    checks = [
        all(t in p.tags for t in f.get("tags_all", [])),
        not f.get("tags_any") or any(_glob(t, pat) for t in p.tags for pat in f["tags_any"]),
        not any(_glob(t, pat) for t in p.tags for pat in f.get("tags_none", [])),
        "stage" not in f or p.stage in f["stage"],
        "owner" not in f or (p.owner is None if f["owner"] == "none" else p.owner == f["owner"]),
        "source" not in f or _glob(p.source, f["source"]),
        "subscribed" not in f or p.subscribed == f["subscribed"],
        "active_after" not in f or (p.last_active is not None and p.last_active >= NOW - timedelta(days=30)),
        "checked_in" not in f or any(t == "checkin:expo" or t.startswith("checkin:expo:") for t in p.tags),
        "did" not in f or any(k == "MENU_PRICING" and at >= NOW - timedelta(days=14) for k, at in p.clicks),
    ]
    for model, bounds in f.get("score", {}).items():
        value = p.engagement if model == "engagement" else p.fit
        low, high = bounds.get("min"), bounds.get("max")
        checks.append((low is None or value >= low) and (high is None or value <= high))
    return all(checks)


SCORES = [
    {"engagement": {"min": 10}}, {"engagement": {"max": 5}}, {"engagement": {"min": 0.5, "max": 20}},
    {"fit": {"min": 15}}, {"engagement": {"min": -3, "max": 0}}, {"fit": {"max": 0}},
]  # fmt: skip
FILTER_PARTS = {
    "tags_all": st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True),
    "tags_any": st.lists(st.sampled_from([*TAGS, "interest:*", "checkin:*"]), min_size=1, max_size=2),
    "tags_none": st.lists(st.sampled_from([*TAGS, "interest:*"]), min_size=1, max_size=2),
    "stage": st.lists(st.sampled_from(STAGES), min_size=1, max_size=3, unique=True),
    "owner": st.sampled_from([1, 2, "none"]),
    "source": st.sampled_from(["booth:*", "booth:expo:*", "rep:1", "*:spring", "campaign:*"]),
    "subscribed": st.booleans(),
    "active_after": st.just("30d"),
    "checked_in": st.just("expo"),
    "did": st.just({"kind": "click", "key": "MENU_PRICING", "since": "14d"}),
    "score": st.sampled_from(SCORES),
}
filters = st.dictionaries(st.sampled_from(list(FILTER_PARTS)), st.just(None), min_size=1, max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: FILTER_PARTS[k] for k in keys})
)


@pytest.fixture
def people(app):
    return populate(app.extensions["welead"].db)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=filters)
def test_sql_matches_the_reference(app, people, spec):
    with app.extensions["welead"].db.sessions() as session:
        expected = sorted(p.openid for p in people if reference(p, spec))
        assert segments.count(session, spec, now=NOW) == len(expected)
        items, _ = segments.page(session, spec, limit=500, now=NOW)
        assert [i["openid"] for i in items] == expected


def test_keyset_pages_cover_the_segment(app, people):
    spec = {"subscribed": True}
    seen, after = [], 0
    with app.extensions["welead"].db.sessions() as session:
        while True:
            items, after = segments.page(session, spec, after=after, limit=7)
            seen += [i["openid"] for i in items]
            if after is None:
                break
    assert seen == sorted(p.openid for p in people if p.subscribed)


def test_stage_plus_follows_the_playbook_order(app, people):
    db = app.extensions["welead"].db
    with db.transaction() as session:
        store.load(session, "stages: {order: [new, engaged, {name: mql, at: 40}, sql, customer]}")
    with db.sessions() as session:
        late = sum(p.stage in ("mql", "sql", "customer") for p in people)
        assert segments.count(session, {"stage": ["mql+"]}) == late
        with pytest.raises(segments.SegmentError, match="unknown stage 'hot'"):
            segments.count(session, {"stage": ["hot+"]})


def test_query_string_form():
    f = segments.from_query(MultiDict([
        ("tags_all", "vip"), ("tags_all", "interest:pricing"), ("tags_none", "churned"), ("score", "engagement:10.."),
        ("score", "fit:..5"), ("stage", "mql+"), ("owner", "3"), ("source", "booth:expo:*"), ("subscribed", "true"),
        ("active_after", "30d"), ("active_before", "2026-05-01"), ("checked_in", "expo"), ("did", "click:MENU_X"),
        ("did_since", "7d"), ("after", "10"), ("limit", "5"),
    ]))  # fmt: skip
    assert segments.normalised(f) == {
        "tags_all": ["vip", "interest:pricing"], "tags_none": ["churned"],
        "score": {"engagement": {"min": 10.0}, "fit": {"max": 5.0}}, "stage": ["mql+"], "owner": 3,
        "source": "booth:expo:*", "subscribed": True, "active_after": "30d", "active_before": "2026-05-01",
        "checked_in": "expo", "did": {"kind": "click", "key": "MENU_X", "since": "7d"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"score": {"engagement": {"min": "high"}}}, "score.engagement.min"),
        ({"active_after": "last week"}, "active_after"),
        ({"owner": "someone"}, "owner"),
        ({"subscribed": "yes"}, "subscribed"),
        ({"source": "booth:{event}"}, "placeholders ({name}) are for rules"),
        ("vip", "a segment filter is a mapping"),
    ],
)
def test_bad_filters(app, spec, message):
    expected = pytest.raises(segments.SegmentError, match=re.escape(message))
    with app.extensions["welead"].db.sessions() as session, expected:
        segments.count(session, spec)


@pytest.mark.parametrize("query", ["score=engagement", "score=x:a..b", "subscribed=maybe"])
def test_bad_query_strings(query):
    from urllib.parse import parse_qs

    with pytest.raises(segments.SegmentError):
        segments.from_query(parse_qs(query))


def test_broadcast_audience_delegates_to_segments(app, people):
    with app.extensions["welead"].db.sessions() as session:
        condition = audience.where(session, {"tag": ["vip", "churned"], "subscribed": True})
        from sqlalchemy import func, select

        n = session.scalar(select(func.count()).select_from(Follower).where(condition))
    assert n == sum(p.subscribed and bool(p.tags & {"vip", "churned"}) for p in people)


# --- API and CLI ------------------------------------------------------------------------------------------------


def test_preview_api(client, auth_headers, people):
    r = client.get("/api/v1/segments/preview?tags_any=vip&subscribed=true&limit=3", headers=auth_headers)
    assert r.status_code == 200, r.json
    expected = sorted(p.openid for p in people if "vip" in p.tags and p.subscribed)
    assert r.json["count"] == len(expected)
    assert [i["openid"] for i in r.json["items"]] == expected[:3]
    assert r.json["filter"] == {"tags_any": ["vip"], "subscribed": True}
    assert {"tags", "score", "stage", "owner", "source"} <= set(r.json["items"][0])
    nxt = client.get(f"/api/v1/segments/preview?tags_any=vip&subscribed=true&limit=3&after={r.json['next']}",
                     headers=auth_headers).json  # fmt: skip
    assert [i["openid"] for i in nxt["items"]] == expected[3:6]
    assert client.get("/api/v1/segments/preview?colour=red", headers=auth_headers).status_code == 400
    assert client.get("/api/v1/segments/preview?limit=0", headers=auth_headers).status_code == 400
    assert client.get("/api/v1/segments/preview").status_code == 401


def test_saved_segments_api(client, auth_headers, people):
    body = {"name": "hot vips", "filter": {"tags_all": ["vip"], "score": {"engagement": {"min": 1}}}}
    r = client.post("/api/v1/segments", json=body, headers=auth_headers)
    assert r.status_code == 201, r.json
    seg_id = r.json["id"]
    assert r.json["filter"] == {"tags_all": ["vip"], "score": {"engagement": {"min": 1.0}}}
    assert client.post("/api/v1/segments", json=body, headers=auth_headers).status_code == 409
    bad = {"name": "x", "filter": {"tags_all": 3}}
    assert client.post("/api/v1/segments", json=bad, headers=auth_headers).status_code == 400
    listed = client.get("/api/v1/segments", headers=auth_headers).json["items"]
    assert [s["name"] for s in listed] == ["hot vips"]
    by_id = client.get(f"/api/v1/segments/{seg_id}", headers=auth_headers).json
    by_name = client.get("/api/v1/segments/hot vips", headers=auth_headers).json
    assert by_id["count"] == by_name["count"] == r.json["count"]
    assert client.get("/api/v1/segments/nope", headers=auth_headers).status_code == 404


def test_rep_sees_only_own_leads(client, app, people):
    from welead.auth import issue

    with app.extensions["welead"].db.transaction() as session:
        token = issue(session, "rep-2", "rep", "2")
    headers = {"Authorization": f"Bearer {token}"}
    r = client.get("/api/v1/segments/preview?subscribed=true&limit=500", headers=headers)
    assert r.json["count"] == sum(p.subscribed and p.owner == 2 for p in people)
    assert all(i["owner"] == 2 for i in r.json["items"])
    assert client.post("/api/v1/segments", json={"name": "n", "filter": {}}, headers=headers).status_code == 403


def test_cli_count_and_export(runner, people):
    expected = sorted(p.openid for p in people if "vip" in p.tags)
    r = runner.invoke(args=["segment", "count", "tags_all=vip"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ['filter:    {"tags_all": ["vip"]}', f"followers: {len(expected)}"]
    r = runner.invoke(args=["segment", "count", "--json", '{"tags_all": ["vip"]}', "--quiet"])
    assert r.output.strip() == str(len(expected))
    r = runner.invoke(args=["segment", "export", "tags_all=vip", "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["openid"] for row in rows] == expected and all("vip" in row["tags"].split("|") for row in rows)
    r = runner.invoke(args=["segment", "export", "tags_all=vip", "--format", "jsonl"])
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["openid"] for x in lines] == expected
    r = runner.invoke(args=["segment", "count", "colour=red"])
    assert r.exit_code != 0 and "colour" in r.output
    assert runner.invoke(args=["segment", "count"]).exit_code != 0
    assert runner.invoke(args=["segment", "count", "--name", "nope"]).exit_code != 0

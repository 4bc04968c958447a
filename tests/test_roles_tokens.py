"""Tokens: subjects checked at issue time (a rep id, or a userid stored as the id; an event slug), expiry,
revocation, the list; old rep tokens naming a userid rewritten by migration 0011, or refused, never a 500."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.models import ApiToken, Rep
from tests.helpers import post, recreate_pg_database
from welead.auth import TokenError, digest, expiry, issue
from welead.migrate import upgrade


@pytest.fixture
def amy(app) -> int:
    with app.extensions["welead"].db.transaction() as s:
        s.add_all([Rep(id=7, userid="amy.w", name="Amy"), Rep(id=12, userid="7", name="Digits")])
    return 7


def stored(app, name: str) -> ApiToken:
    with app.extensions["welead"].db.sessions() as s:
        return s.scalar(select(ApiToken).where(ApiToken.name == name))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli_issue(runner, *args: str):
    return runner.invoke(args=["tokens", "issue", *args])


def test_rep_subject_is_the_rep_id_whether_given_as_id_or_userid(app, runner, client, amy):
    by_userid = cli_issue(runner, "amy-phone", "--role", "rep", "--subject", "amy.w")
    assert by_userid.exit_code == 0, by_userid.output
    assert stored(app, "amy-phone").subject == "7"
    assert cli_issue(runner, "amy-laptop", "--role", "rep", "--subject", "7").exit_code == 0
    assert stored(app, "amy-laptop").subject == "7"  # an id first, then a userid (rep 12's userid is "7")
    post(client, "subscribe", openid="o-1")
    for path in ("/api/v1/followers", "/api/v1/segments/preview?subscribed=true", "/api/v1/segments"):
        assert client.get(path, headers=bearer(by_userid.output.strip())).status_code == 200, path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "rep", "--subject", "ghost"], "no rep with id or WeCom userid 'ghost'"),
        (["--role", "rep", "--subject", "99"], "no rep with id or WeCom userid '99'"),
        (["--role", "rep"], "a rep token's subject is the rep's id"),
        (["--role", "staff"], "a staff token's subject is an event slug"),
        (["--role", "staff", "--subject", "Expo 2026"], "a staff token's subject is an event slug"),
        (["--role", "staff", "--subject", "-expo"], "a staff token's subject is an event slug"),
        (["--role", "marketer", "--subject", "expo"], "marketer tokens see everything"),
        (["--role", "marketer", "--expires", "30 days"], "--expires takes a duration"),
        (["--role", "marketer", "--expires", "0d"], "--expires takes a duration"),
    ],
)
def test_issue_refuses_what_it_cannot_scope(app, runner, amy, args, message):
    r = cli_issue(runner, "t", *args)
    assert r.exit_code == 1 and message in r.output, r.output
    assert stored(app, "t") is None


def test_names_are_plain(app):
    with app.extensions["welead"].db.transaction() as s, pytest.raises(TokenError, match="no spaces or ':'"):
        issue(s, "rep:7", "marketer")


def test_staff_slug_up_to_64(app, runner):
    assert cli_issue(runner, "booth", "--role", "staff", "--subject", "expo-2026").exit_code == 0
    assert cli_issue(runner, "long", "--role", "staff", "--subject", "a" * 65).exit_code == 1
    assert stored(app, "booth").subject == "expo-2026"


def test_expiry_revocation_and_the_list(app, runner, client):
    token = cli_issue(runner, "mkt", "--role", "marketer", "--expires", "30d").output.strip()
    assert client.get("/api/v1/followers", headers=bearer(token)).status_code == 200
    until = stored(app, "mkt").expires_at
    assert timedelta(days=29, hours=23) < until - utcnow() <= timedelta(days=30)
    listed = [json.loads(line) for line in runner.invoke(args=["tokens", "list", "--json"]).output.splitlines()]
    mkt = next(t for t in listed if t["name"] == "mkt")
    assert mkt["role"] == "marketer" and mkt["state"] == "active" and mkt["expires_at"].startswith(str(until.date()))
    assert all("hash" not in k and token not in json.dumps(t) for t in listed for k in t)
    r = runner.invoke(args=["tokens", "revoke", "mkt"])
    assert r.exit_code == 0 and r.output.strip() == "revoked mkt"
    assert client.get("/api/v1/followers", headers=bearer(token)).status_code == 401
    assert runner.invoke(args=["tokens", "revoke", "mkt"]).exit_code == 1
    assert runner.invoke(args=["tokens", "revoke", "nobody"]).exit_code == 1
    assert "mkt\tmarketer\t-\trevoked" in runner.invoke(args=["tokens", "list"]).output
    again = cli_issue(runner, "mkt", "--role", "marketer").output.strip()
    assert client.get("/api/v1/followers", headers=bearer(again)).status_code == 200
    assert client.get("/api/v1/followers", headers=bearer(token)).status_code == 401  # rotated
    assert stored(app, "mkt").expires_at is None


def test_an_expired_token_is_401(app, client, runner):
    with app.extensions["welead"].db.transaction() as s:
        token = issue(s, "old", "marketer", expires_at=utcnow() - timedelta(seconds=1))
    r = client.get("/api/v1/followers", headers=bearer(token))
    assert r.status_code == 401 and "expired" in r.json["message"]
    assert "old\tmarketer\t-\texpired" in runner.invoke(args=["tokens", "list"]).output


def test_expiry_units():
    now = utcnow()
    assert expiry("12h", now) == now + timedelta(hours=12) and expiry("90m", now) == now + timedelta(minutes=90)
    assert expiry(None) is None and expiry("never") is None


@pytest.mark.parametrize("subject", ["amy.w", "", None, "³", "99999999999999999999999", "0"])
def test_a_token_whose_rep_subject_is_no_rep_id_is_refused_not_a_500(app, client, subject):
    with app.extensions["welead"].db.transaction() as s:
        s.add(ApiToken(name="legacy", role="rep", subject=subject, token_hash=digest("legacy-token")))
    for path in ("/api/v1/followers", "/api/v1/segments/preview?subscribed=true", "/api/v1/followers/x"):
        assert client.get(path, headers=bearer("legacy-token")).status_code == 401, path


def _databases(tmp_path) -> list[str]:
    urls = [f"sqlite:///{tmp_path / 'm.db'}"]
    if pg := os.environ.get("DATABASE_URL", ""):
        url = sa.engine.make_url(pg.replace("postgresql://", "postgresql+psycopg://", 1))
        urls.append(recreate_pg_database(url, f"{url.database}_tokens_{os.environ.get('PYTEST_XDIST_WORKER', 'm')}"))
    return urls


def test_migration_0011_rewrites_rep_tokens_naming_a_userid(tmp_path):
    for url in _databases(tmp_path):
        upgrade(url, "0010")
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO reps (id, userid, name, active, confirmed, weight, created_at) VALUES "
                                 "(5, 'amy.w', 'Amy', true, true, 1, '2026-01-01'), "
                                 "(6, '5', 'Five', true, true, 1, '2026-01-01')"))  # fmt: skip
            for name, role, subject in [("a", "rep", "amy.w"), ("b", "rep", "5"), ("c", "rep", "ghost"),
                                        ("d", "staff", "amy.w"), ("e", "rep", None)]:  # fmt: skip
                conn.execute(
                    sa.text("INSERT INTO api_tokens (name, role, token_hash, subject, created_at) "
                            "VALUES (:n, :r, :h, :s, '2026-01-01')"),
                    {"n": name, "r": role, "h": name * 64, "s": subject},
                )  # fmt: skip
        upgrade(url, "0011")
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT name, subject FROM api_tokens")).all())
            assert conn.execute(sa.text("SELECT count(*) FROM api_tokens WHERE expires_at IS NULL")).scalar() == 5
        engine.dispose()
        assert rows == {"a": "5", "b": "5", "c": "ghost", "d": "amy.w", "e": None}, url

"""Tags: created on first use, idempotent; mirrored to WeChat user tags by the sync job (against the sandbox, over
real HTTP, WeChat's limits enforced there); the OA menu pushed from YAML.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from scrm import tags
from scrm.models import Follower, FollowerTag, Tag
from scrm.playbook import store
from tasks.tagsync import sync
from tests.helpers import post
from wechat.menu import MenuError, read_menu
from wechat.sandbox_state import SandboxControl
from welead.cli_wechat import menu_cli

ROOT = Path(__file__).resolve().parent.parent
SYNCED = """
wechat_tags: {sync: true, include: ["interest:*", "vip", "long:*"]}
rules:
  - {name: pricing, when: {click: MENU_PRICING}, do: [{tag: [interest:pricing, vip, internal-only]}]}
"""
BATCHTAGGING = "oa/tags/members/batchtagging"


@pytest.fixture
def ctl(app) -> SandboxControl:
    control = SandboxControl(app.extensions["welead"].redis_slow)
    control.reset()
    return control


def load(app, text: str) -> None:
    with app.extensions["welead"].db.transaction() as session:
        store.load(session, text)


def followers(app, n: int, tag_names: list[str], prefix: str = "oT") -> None:
    with app.extensions["welead"].db.transaction() as session:
        for i in range(n):
            f = Follower(openid=f"{prefix}{i:03d}", profile={}, subscribed=True, channel="oa")
            session.add(f)
            session.flush()
            for name in tag_names:
                tags.add(session, f.id, name)


def unsynced(app) -> int:
    with app.extensions["welead"].db.sessions() as session:
        return len(session.scalars(select(FollowerTag.follower_id).where(FollowerTag.synced_at.is_(None))).all())


def test_tags_are_created_once_and_added_once(app):
    with app.extensions["welead"].db.transaction() as session:
        f = Follower(openid="oX", profile={})
        session.add(f)
        session.flush()
        assert tags.add(session, f.id, "vip") is True
        assert tags.add(session, f.id, "vip") is False
        assert tags.names(session, f.id) == {"vip"}
        assert tags.remove(session, f.id, "vip") is not None
        assert tags.remove(session, f.id, "vip") is None and tags.remove(session, f.id, "never") is None
        assert len(session.scalars(select(Tag).where(Tag.name == "vip")).all()) == 1
        with pytest.raises(ValueError):
            tags.add(session, f.id, "x" * 65)


def test_sync_mirrors_included_tags_in_batches_of_50(app, live, ctl, client):
    load(app, SYNCED)
    post(client, "subscribe", openid="oCallback")
    post(client, "click", openid="oCallback", key="MENU_PRICING")
    followers(app, 54, ["interest:pricing", "long:" + "x" * 40])
    with app.app_context():
        report = sync()
    assert report == {"created": 2, "tagged": 56, "untagged": 0, "skipped": 1, "stopped": ""}
    state = {t["name"]: t["count"] for t in ctl.state()["tags"]}
    assert state == {"interest:pricing": 55, "vip": 1}  # internal-only: not included; long: over 30 characters
    calls = ctl.sent(BATCHTAGGING, ok_only=True)
    assert sorted(len(c["body"]["openid_list"]) for c in calls) == [1, 5, 50]
    with app.app_context():
        again = sync()
    assert again == {"created": 0, "tagged": 0, "untagged": 0, "skipped": 1, "stopped": ""}
    assert len(ctl.sent(BATCHTAGGING)) == 3
    assert unsynced(app) == 55  # internal-only and long:... stay local


def test_sync_is_off_unless_the_playbook_says_so(app, live, ctl):
    load(app, "rules: []")
    followers(app, 2, ["vip"])
    with app.app_context():
        assert sync() == {"disabled": True}
    assert ctl.sent() == []


def test_busy_wechat_stops_the_run_and_the_next_run_finishes(app, live, ctl):
    load(app, SYNCED)
    followers(app, 3, ["vip"])
    ctl.fail_next(BATCHTAGGING, count=1, errcode=-1)
    with app.app_context():
        first = sync()
    assert first["created"] == 1 and first["tagged"] == 0 and "-1" in first["stopped"]
    assert unsynced(app) == 3
    with app.app_context():
        assert sync()["tagged"] == 3
    assert unsynced(app) == 0


def test_follower_over_wechats_20_tag_limit_is_skipped_not_retried(app, live, ctl):
    names = [f"interest:t{i:02d}" for i in range(21)]
    load(app, SYNCED)
    followers(app, 1, names)
    with app.app_context():
        report = sync()
    assert report["created"] == 21 and report["tagged"] == 21 and report["skipped"] == 1
    assert unsynced(app) == 0
    with app.app_context():
        assert sync()["tagged"] == 0


BATCHUNTAGGING = "oa/tags/members/batchuntagging"


def untag(app, openids: list[str], name: str) -> None:
    with app.extensions["welead"].db.transaction() as session:
        for openid in openids:
            fid = session.scalars(select(Follower.id).where(Follower.openid == openid)).one()
            assert tags.remove(session, fid, name) is not None


def queued_removals(app) -> int:
    with app.extensions["welead"].db.sessions() as session:
        return len(session.scalars(select(tags.TagRemoval.id)).all())


def test_sync_mirrors_removals_once_in_batches_of_50(app, live, ctl):
    load(app, SYNCED)
    followers(app, 53, ["interest:pricing", "vip"])
    followers(app, 1, ["internal-only"], prefix="oLocal")  # never mirrored: its removal stays local
    with app.app_context():
        assert sync()["tagged"] == 106
    untag(app, [f"oT{i:03d}" for i in range(53)], "interest:pricing")
    untag(app, ["oT000"], "vip")
    untag(app, ["oLocal000"], "internal-only")
    assert queued_removals(app) == 54
    with app.app_context():
        report = sync()
    assert report == {"created": 0, "tagged": 0, "untagged": 54, "skipped": 0, "stopped": ""}
    calls = ctl.sent(BATCHUNTAGGING, ok_only=True)
    assert sorted(len(c["body"]["openid_list"]) for c in calls) == [1, 3, 50]
    state = {t["name"]: t["count"] for t in ctl.state()["tags"]}
    assert state == {"interest:pricing": 0, "vip": 52}
    assert ctl.redis.smembers("sandbox:oa:user_tags:oT000") == set()
    assert queued_removals(app) == 0
    with app.app_context():
        again = sync()
    assert again == {"created": 0, "tagged": 0, "untagged": 0, "skipped": 0, "stopped": ""}
    assert len(ctl.sent(BATCHUNTAGGING)) == 3


def test_removal_before_its_sync_and_re_adding_are_mirrored(app, live, ctl):
    load(app, SYNCED)
    followers(app, 2, ["vip"])
    with app.app_context():
        sync()
    untag(app, ["oT000", "oT001"], "vip")
    with app.extensions["welead"].db.transaction() as session:  # oT001 gets it back before the next run
        fid = session.scalars(select(Follower.id).where(Follower.openid == "oT001")).one()
        assert tags.add(session, fid, "vip") is True
    with app.app_context():
        report = sync()
    assert report["untagged"] == 2 and report["tagged"] == 1
    assert {t["name"]: t["count"] for t in ctl.state()["tags"]} == {"vip": 1}
    assert ctl.redis.smembers("sandbox:oa:tag_members:" + str(ctl.state()["tags"][0]["id"])) == {b"oT001"}


def test_busy_wechat_keeps_removals_for_the_next_run(app, live, ctl):
    load(app, SYNCED)
    followers(app, 2, ["vip"])
    with app.app_context():
        sync()
    untag(app, ["oT000", "oT001"], "vip")
    ctl.fail_next(BATCHUNTAGGING, count=1, errcode=-1)
    with app.app_context():
        first = sync()
    assert first["untagged"] == 0 and "-1" in first["stopped"]
    assert queued_removals(app) == 2
    with app.app_context():
        assert sync()["untagged"] == 2
    assert queued_removals(app) == 0
    assert {t["name"]: t["count"] for t in ctl.state()["tags"]} == {"vip": 0}


def test_menu_push_to_the_sandbox(app, live, ctl, runner):
    result = runner.invoke(menu_cli, ["push", str(ROOT / "playbooks" / "menu.yml")])
    assert result.exit_code == 0, result.output
    menu = ctl.state()["menu"]
    assert [b["name"] for b in menu["button"]] == ["Products", "Events", "Book a demo"]
    assert menu["button"][0]["sub_button"][0] == {"type": "click", "name": "Pricing", "key": "MENU_PRICING"}
    assert menu["button"][2] == {"type": "click", "name": "Book a demo", "key": "MENU_DEMO"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("menu: []", "menu: List should have at least 1 item"),
        ("menu: [{name: a, click: A}, {name: b, click: B}, {name: c, click: C}, {name: d, click: D}]", "at most 3"),
        (
            "menu: [{name: a, items: [" + ", ".join(f"{{name: i{i}, click: K{i}}}" for i in range(6)) + "]}]",
            "at most 5",
        ),
        ("menu: [{name: a, click: " + "K" * 129 + "}]", "menu[0].click: the key is 129 bytes; WeChat allows 128"),
        ("menu: [{name: a, view: 'https://x/" + "p" * 250 + "'}]", "the URL is 260 bytes; WeChat allows 256"),
        ("menu: [{name: a, view: 'ftp://x'}]", "starts with http:// or https://"),
        ("menu: [{name: 一二三四五六, click: K}]", "menu[0].name: a top-level name is 18 bytes"),
        ("menu: [{name: a, click: K, view: 'https://x'}]", "exactly one of click, view or items"),
        ("menu: [{name: a, items: [{name: b}]}]", "menu[0].items[0]: an item has either click"),
        ("menu: [{name: a, clik: K}]", "menu[0].clik: Extra inputs"),
    ],
)
def test_bad_menus(text: str, message: str):
    with pytest.raises(MenuError) as caught:
        read_menu(text)
    assert message in str(caught.value)


def test_menu_check_prints_the_json(app, runner, tmp_path):
    result = runner.invoke(menu_cli, ["check", str(ROOT / "playbooks" / "menu.yml")])
    assert result.exit_code == 0 and '"key": "MENU_PRICING"' in result.output
    bad = tmp_path / "menu.yml"
    bad.write_text("menu: [{name: a}]")
    result = runner.invoke(menu_cli, ["push", str(bad)])
    assert result.exit_code != 0 and "exactly one of click, view or items" in result.output

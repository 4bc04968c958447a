"""One person, one contact: an OA follower and a WeCom contact with the same unionid, merged through simulated
callbacks and the sandbox (user/info and externalcontact/get), read as one person, and un-merged by an admin."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from foundation.clock import utcnow
from scrm import segments
from scrm.merge_models import ContactMerge, MergeMove
from scrm.models import Follower, FollowerTag, Interaction, Outbox, Tag
from scrm.tags import TagRemoval
from tests.helpers import post
from tests.merge_kit import (
    EID,
    OPENID,
    PLAYBOOK,
    follower_row,
    get,
    load,
    merges,
    person,
    sandbox,
    svc,
    work,
)
from tests.messaging_kit import drain, messages_per_openid, with_messaging


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


@pytest.fixture
def merged(app, client, live, auth_headers):
    """o-amy (OA, scanned a booth code) and wm-amy (WeCom, added rep zhao.lei): one person."""
    load(app, PLAYBOOK)
    person(app, client)
    (m,) = merges(client, auth_headers)
    return m


def test_same_unionid_is_one_person(app, client, auth_headers, merged):
    oa, wecom = get(client, auth_headers, OPENID), get(client, auth_headers, EID)
    assert oa == wecom  # either id reads the primary's record
    assert oa["openid"] == OPENID and oa["channel"] == "oa" and oa["subscribed"] is True
    assert set(oa["tags"]) == {"channel:oa", "channel:wecom", "vip", "event:expo"}
    assert oa["score"] == pytest.approx(17, abs=0.01)  # 10 (OA follow) + 7 (WeCom contact): both ledgers
    assert oa["owner"] is not None  # the WeCom rep: the OA follower had no owner
    assert oa["source"] == "booth:expo:a1"
    assert [(i["openid"], i["channel"]) for i in oa["identities"]] == [(OPENID, "oa"), (EID, "wecom")]
    assert merged["state"] == "merged" and merged["reason"] == "unionid" and merged["unionid"] == oa["unionid"]
    assert merged["primary"]["openid"] == OPENID and merged["secondary"]["openid"] == EID
    moved = merged["moved"]  # its one callback, its ledger row, the tag the primary lacked, its timeline entries
    assert {"interaction": 1, "score_event": 1, "tag": 1}.items() <= moved.items() and moved["activity"] >= 2

    timeline = client.get(f"/api/v1/followers/{EID}/timeline", headers=auth_headers).json
    assert {e["channel"] for e in timeline if e["source"] == "wechat"} == {"oa", "wecom"}
    assert {"subscribe", "change_external_contact", "merged", "owner_assigned"} <= {e["kind"] for e in timeline}
    explained = client.get(f"/api/v1/followers/{EID}/score", headers=auth_headers).json
    assert sorted(e["rule"] for e in explained["events"]) == ["oa-follow", "wecom-added"]

    listed = client.get("/api/v1/followers", headers=auth_headers).json["items"]
    assert [f["openid"] for f in listed] == [OPENID]
    with svc(app).db.sessions() as s:
        assert segments.count(s, {"tags_all": ["vip"]}) == 1
        assert segments.count(s, {"tags_all": ["channel:oa", "channel:wecom"]}) == 1
        assert segments.count(s, {"openids": [EID]}) == 1  # an identity names its person
        assert segments.count(s, {"all": True}) == 1
    preview = client.get("/api/v1/segments/preview?tags_all=vip", headers=auth_headers).json
    assert preview["count"] == 1 and [f["openid"] for f in preview["items"]] == [OPENID]


def test_broadcast_sends_once_per_person_to_the_oa_openid(app, client, auth_headers, merged):
    body = {"segment": {"tag": "vip"}, "template": "event_checkin", "data": {"event_name": "Expo"}}
    r = client.post("/api/v1/broadcasts", json=body, headers=auth_headers)
    assert r.status_code == 202, r.json
    drain(app)
    done = client.get(f"/api/v1/broadcasts/{r.json['id']}", headers=auth_headers).json
    assert done["audience"] == 1 and done["counts"] == {"sent": 1}
    assert {o: len(m) for o, m in messages_per_openid(app).items()} == {OPENID: 1}


def test_events_for_the_secondary_after_the_merge_land_on_the_primary(app, client, auth_headers, merged):
    primary_id = follower_row(app, OPENID).id
    later = int(time.time()) + 1  # not the first add's second: WeCom events dedup on the second
    post(client, "wecom-del-contact", userid="zhao.lei", external_userid=EID, create_time=later)
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid=EID, create_time=later + 1)
    post(client, "text", openid=OPENID, content="price please")
    with svc(app).db.sessions() as s:
        owners = dict(s.execute(select(Interaction.id, Interaction.follower_id)).all())
        assert set(owners.values()) == {primary_id} and len(owners) == 5
        assert s.scalar(select(func.count()).select_from(Follower)) == 2  # no third row
    oa = get(client, auth_headers, EID)
    assert oa["openid"] == OPENID and oa["score"] == pytest.approx(27, abs=0.01)  # 10 + 7 + 7 + 3
    assert "interest:pricing" in oa["tags"]
    assert oa["subscribed"] is True  # the WeCom contact's removal does not unfollow the OA follower
    assert [i["subscribed"] for i in oa["identities"]] == [True, True]  # removed, then added back
    assert follower_row(app, EID).unsubscribed_at is not None


def test_undo_gives_back_two_with_their_own_data(app, client, auth_headers, merged):
    post(client, "text", openid=OPENID, content="price?")  # gained after the merge: stays on the primary
    r = client.post(f"/api/v1/merges/{merged['id']}/undo", headers=auth_headers)
    assert r.status_code == 200 and r.json["state"] == "undone" and r.json["undone_by"]
    oa, wecom = get(client, auth_headers, OPENID), get(client, auth_headers, EID)
    assert oa["openid"] == OPENID and wecom["openid"] == EID and wecom["channel"] == "wecom"
    assert set(oa["tags"]) == {"channel:oa", "vip", "event:expo", "interest:pricing"}
    assert set(wecom["tags"]) == {"channel:wecom", "vip"}
    assert oa["score"] == pytest.approx(13, abs=0.01) and wecom["score"] == pytest.approx(7, abs=0.01)
    assert oa["owner"] is None and wecom["owner"] is not None
    assert len(oa["identities"]) == 1 and len(wecom["identities"]) == 1
    wecom_timeline = client.get(f"/api/v1/followers/{EID}/timeline", headers=auth_headers).json
    assert {e["channel"] for e in wecom_timeline if e["source"] == "wechat"} == {"wecom"}
    assert {"unmerged", "merged_into", "owner_assigned"} <= {e["kind"] for e in wecom_timeline}
    oa_timeline = client.get(f"/api/v1/followers/{OPENID}/timeline", headers=auth_headers).json
    assert {e["channel"] for e in oa_timeline if e["source"] == "wechat"} == {"oa"}
    with svc(app).db.sessions() as s:
        assert segments.count(s, {"tags_all": ["vip"]}) == 2
    assert client.post(f"/api/v1/merges/{merged['id']}/undo", headers=auth_headers).status_code == 409

    # remembered: neither the job nor a new profile fetch merges the pair again
    post(client, "wecom-add-contact", userid="li.wei", external_userid=EID, create_time=int(time.time()) + 1)
    work(app)
    with app.app_context():
        from tasks.merge import merge_unionid

        assert merge_unionid(oa["unionid"]) == {"merges": []}
    assert [m["state"] for m in merges(client, auth_headers)] == ["undone"]
    assert get(client, auth_headers, EID)["openid"] == EID


def test_undo_untags_in_wechat_what_was_mirrored_for_the_primary(app, client, auth_headers, merged):
    with svc(app).db.transaction() as s:  # as if the sync had mirrored the moved tag to WeChat for the OA openid
        tag = s.scalar(select(Tag).where(Tag.name == "channel:wecom"))
        tag.wechat_tag_id = 101
        s.execute(FollowerTag.__table__.update().where(FollowerTag.tag_id == tag.id).values(synced_at=utcnow()))
    client.post(f"/api/v1/merges/{merged['id']}/undo", headers=auth_headers)
    with svc(app).db.sessions() as s:
        (removal,) = s.scalars(select(TagRemoval))
        assert removal.follower_id == follower_row(app, OPENID).id and removal.wechat_tag_id == 101


def test_the_merge_job_twice_is_one_merge(app, client, auth_headers, merged):
    with app.app_context():
        from tasks.merge import merge_unionid

        assert merge_unionid(merged["unionid"]) == {"merges": []}
        assert merge_unionid(merged["unionid"]) == {"merges": []}
    with svc(app).db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ContactMerge)) == 1
        moves = s.scalar(select(func.count()).select_from(MergeMove))
        assert moves == sum(merged["moved"].values())


def test_a_wecom_contact_that_is_gone_is_given_up(app, client, live):
    sandbox(app).set_external_contact("wm-gone", deleted=True)
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid="wm-gone")
    work(app)
    with svc(app).db.sessions() as s:
        (row,) = s.scalars(select(Outbox).where(Outbox.task == "profile.fetch_wecom"))
    assert row.done_at is not None and "84061" in (row.last_error or "")
    assert follower_row(app, "wm-gone").unionid is None


def test_wecom_profile_is_stored_on_the_contact(app, client, live):
    sandbox(app).set_external_contact("wm-bo", name="Bo Li", userid="zhao.lei", state="booth:expo:b2")
    post(client, "wecom-add-contact", userid="zhao.lei", external_userid="wm-bo")
    work(app)
    row = follower_row(app, "wm-bo")
    assert row.profile["name"] == "Bo Li" and row.profile["follow_user"][0]["userid"] == "zhao.lei"
    assert row.unionid and row.profile_fetched_at is not None and row.merged_into is None

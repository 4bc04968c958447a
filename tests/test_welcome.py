"""Welcome messages end to end: a simulated WeCom add event with a WelcomeCode → the applier → "welcome.send" on the
priority queue → the sandbox's send_welcome_msg (once per code, 20 seconds), every outcome recorded."""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.code_models import ContactCode
from scrm.models import Rep
from scrm.notification_models import WelcomeMessage
from tasks.queue import HIGH, QUEUES
from tasks.wechat import wecom_client
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import add_followers, sandbox, svc, with_messaging
from wechat.errors import WeChatAPIError
from wechat.sandbox_welcome import issued_at, mint_welcome_code
from wechat.simulate import build_message

WELCOME = "wecom/externalcontact/send_welcome_msg"
_ids = itertools.count(1)


@pytest.fixture
def settings(settings):
    return with_messaging(settings, batch=10)


def rep_with_code(app, welcome: str | None = "您好, 我是李伟, 有问题随时找我") -> tuple[int, str]:
    with svc(app).db.transaction() as s:
        rep = Rep(userid="li.wei", name="Li Wei", created_at=utcnow())
        s.add(rep)
        s.flush()
        s.add(ContactCode(kind="rep", name="Li Wei", rep_id=rep.id, welcome=welcome, members=[], tags=[],
                          wecom_users=["li.wei"], created_at=utcnow()))  # fmt: skip
        return rep.id, f"rep:{rep.id}"


def add_contact(client, state: str, create_time: int | None = None, **options):
    options.setdefault("external_userid", f"wm-new-{next(_ids)}")
    return post(client, "wecom-add-contact", userid="li.wei", state=state,
                create_time=create_time or int(time.time()), **options)  # fmt: skip


def welcomes(app) -> list[WelcomeMessage]:
    with svc(app).db.sessions() as s:
        return list(s.scalars(select(WelcomeMessage).order_by(WelcomeMessage.id)))


def test_the_codes_welcome_goes_out_once(app, client, live, auth_headers):
    _, state = rep_with_code(app)
    now = int(time.time())
    code = mint_welcome_code(now)
    for _ in range(2):  # WeCom retries the callback: one interaction, one job
        add_contact(client, state, create_time=now, external_userid="wm-cust-1", welcome_code=code)
    run_worker(app, burst=True)
    (call,) = sandbox(app).sent(WELCOME)
    assert call["errcode"] == 0
    assert call["body"] == {"welcome_code": code, "text": {"content": "您好, 我是李伟, 有问题随时找我"}}
    (row,) = welcomes(app)
    assert (row.status, row.attempts, row.userid, row.scene) == ("sent", 1, "li.wei", state)
    (listed,) = client.get("/api/v1/welcomes?status=sent", headers=auth_headers).json["items"]
    assert listed["code"] == code and listed["seconds_after_event"] < 20
    timeline = client.get("/api/v1/followers/wm-cust-1/timeline", headers=auth_headers).json
    assert any(e["kind"] == "welcome_message" and e["data"]["status"] == "sent" for e in timeline)


def test_41051_already_sent_is_recorded_and_not_retried(app, client, live, auth_headers):
    _, state = rep_with_code(app)
    code = mint_welcome_code()
    with app.app_context():
        wecom_client().send_welcome_msg(code, "another app got there first")
    add_contact(client, state, welcome_code=code)
    run_worker(app, burst=True)
    first, second = sandbox(app).sent(WELCOME)
    assert first["errcode"] == 0 and second["errcode"] == 41051
    (row,) = welcomes(app)
    assert (row.status, row.errcode, row.attempts) == ("already_sent", 41051, 1)
    (listed,) = client.get("/api/v1/welcomes?status=already_sent", headers=auth_headers).json["items"]
    assert "41051" in listed["error"]


def test_past_the_20_second_window_nothing_is_sent(app, client, live):
    _, state = rep_with_code(app)
    add_contact(client, state, create_time=int(time.time()) - 30)  # the applier saw it late (a backlog, an outage)
    run_worker(app, burst=True)
    assert sandbox(app).sent(WELCOME) == []
    (row,) = welcomes(app)
    assert row.status == "expired" and "20-second" in row.error


def test_41096_is_retried_inside_the_window(app, client, live):
    _, state = rep_with_code(app)
    sandbox(app).fail_next(WELCOME, errcode=41096)
    add_contact(client, state)
    run_worker(app, burst=True)
    assert [c["errcode"] for c in sandbox(app).sent(WELCOME)] == [41096, 0]
    (row,) = welcomes(app)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_permanent_error_is_recorded(app, client, live):
    _, state = rep_with_code(app)
    sandbox(app).fail_next(WELCOME, errcode=40058)
    add_contact(client, state)
    run_worker(app, burst=True)
    (row,) = welcomes(app)
    assert (row.status, row.errcode, row.attempts) == ("error", 40058, 1)


def test_no_welcome_text_sends_nothing(app, client, live):
    _, state = rep_with_code(app, welcome="  ")
    add_contact(client, state)
    add_contact(client, "campaign:spring")  # a state that names no contact code
    add_contact(client, "")
    run_worker(app, burst=True)
    assert sandbox(app).sent(WELCOME) == []
    assert [r.status for r in welcomes(app)] == ["skipped"] * 3


def test_a_team_codes_welcome(app, client, live):
    rep_with_code(app)
    with svc(app).db.transaction() as s:
        team = ContactCode(kind="team", name="Booth", welcome="欢迎来到展台", members=[], tags=[], wecom_users=[],
                           created_at=utcnow())  # fmt: skip
        s.add(team)
        s.flush()
        state = f"team:{team.id}"
    add_contact(client, state)
    run_worker(app, burst=True)
    (call,) = sandbox(app).sent(WELCOME)
    assert call["body"]["text"]["content"] == "欢迎来到展台"


def test_welcome_jobs_run_before_queued_broadcast_batches(app, client, live, auth_headers):
    from tasks.broadcast import fan_out

    _, state = rep_with_code(app)
    add_followers(app, 60, tags=("vip",))
    body = {"segment": {"tag": "vip"}, "template": "event_checkin", "data": {"event_name": "Expo"}}
    bid = client.post("/api/v1/broadcasts", json=body, headers=auth_headers).json["id"]
    with app.app_context():
        assert fan_out(bid) == 60  # six batch jobs now wait on the default queue
    add_contact(client, state)  # its welcome job comes after them
    run_worker(app, burst=True)
    endpoints = [c["endpoint"] for c in sandbox(app).sent() if c["endpoint"] in (WELCOME, "oa/message/template/send")]
    assert endpoints[0] == WELCOME and endpoints.count("oa/message/template/send") == 60
    assert QUEUES[0] == HIGH


def test_the_sandbox_keeps_wecoms_rules(app, live):
    with app.app_context():
        client = wecom_client()
        fresh = mint_welcome_code()
        cases = [(mint_welcome_code(time.time() - 21), 41096), ("never-issued-by-the-sandbox", 41096)]
        for code, errcode in cases:
            with pytest.raises(WeChatAPIError) as exc:
                client.send_welcome_msg(code, "hi")
            assert exc.value.errcode == errcode
        with pytest.raises(WeChatAPIError) as exc:
            client.send_welcome_msg(fresh, "")
        assert exc.value.errcode == 44004
        client.send_welcome_msg(fresh, "hi")
        with pytest.raises(WeChatAPIError) as exc:
            client.send_welcome_msg(fresh, "hi again")
        assert exc.value.errcode == 41051


def test_the_simulator_mints_codes_the_sandbox_can_age(settings):
    fields = build_message("wecom-add-contact", settings, create_time=1_700_000_000, state="rep:1")
    assert issued_at(fields["WelcomeCode"]) == 1_700_000_000
    assert build_message("wecom-add-contact", settings, welcome_code="given")["WelcomeCode"] == "given"
    assert issued_at("not base64 at all!") is None

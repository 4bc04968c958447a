"""Single sends through the real pipeline: API → delivery row → RQ job → OA client → sandbox → callback."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.delivery_models import Delivery
from scrm.models import Follower, Interaction, Rep
from tasks.pump import pump
from tasks.send import rules
from tasks.worker import run_worker
from tests.helpers import post
from tests.messaging_kit import add_followers, drain, rows, sandbox, svc, template_sends, with_messaging


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


def send(client, auth_headers, openid="o-000000", template="event_checkin", **body):
    return client.post("/api/v1/messages", json={"openid": openid, "template": template, **body}, headers=auth_headers)


def test_send_then_delivered_and_on_the_timeline(app, client, live, auth_headers):
    add_followers(app, 1)
    r = send(client, auth_headers, data={"event_name": "WeLead Expo", "booth": "A12"}, key="k1")
    assert r.status_code == 202 and r.json["state"] == "queued"
    drain(app)
    (row,) = rows(app)
    assert row.state == "sent" and row.msgid and row.attempts == 1 and row.retries == 0
    (call,) = template_sends(app)
    assert call["body"] == row.payload  # the stored payload is exactly what went out
    assert call["body"]["data"]["thing1"] == {"value": "WeLead Expo"} and call["body"]["client_msg_id"]

    post(client, "template-status", openid="o-000000", msg_id=int(row.msgid), status="success")
    assert rows(app)[0].state == "delivered"
    post(client, "template-status", openid="o-000000", msg_id=int(row.msgid), status="success")  # WeChat retry
    kinds = [e["kind"] for e in client.get("/api/v1/followers/o-000000/timeline", headers=auth_headers).json]
    assert sorted(kinds) == ["message_delivered", "message_sent", "templatesendjobfinish"]
    listed = client.get(
        "/api/v1/deliveries", query_string={"openid": "o-000000", "state": "delivered"}, headers=auth_headers
    ).json
    assert [d["id"] for d in listed["items"]] == [row.id]


def test_failed_status_from_callback(app, client, live, auth_headers):
    add_followers(app, 1)
    send(client, auth_headers)
    drain(app)
    msgid = int(rows(app)[0].msgid)
    post(client, "template-status", openid="o-000000", msg_id=msgid, status="failed:user block")
    (row,) = rows(app)
    assert row.state == "failed" and row.detail == "failed:user block"


def test_same_key_is_one_delivery(app, client, live, auth_headers):
    add_followers(app, 1)
    assert send(client, auth_headers, key="once").status_code == 202
    assert send(client, auth_headers, key="once").status_code == 200
    drain(app)
    assert len(rows(app)) == 1 and len(template_sends(app)) == 1


def test_unknown_follower_template_or_channel(app, client, auth_headers):
    add_followers(app, 1)
    assert send(client, auth_headers, openid="nobody").status_code == 404
    r = send(client, auth_headers, template="no_such_template")
    assert r.status_code == 422 and "no message template" in r.json["message"]
    r = send(client, auth_headers, template="we_miss_you", channel="template")
    assert r.status_code == 422 and "cannot go" in r.json["message"]


def test_unsubscribed_and_opted_out_are_blocked_without_a_call(app, client, live, auth_headers):
    add_followers(app, 1, prefix="gone-", subscribed=False)
    add_followers(app, 1, prefix="out-", tags=("opted-out",))
    send(client, auth_headers, openid="gone-000000")
    send(client, auth_headers, openid="out-000000")
    drain(app)
    assert [(r.state, r.reason) for r in rows(app)] == [("blocked", "unsubscribed"), ("blocked", "opted_out")]
    assert template_sends(app) == []


def test_43004_blocks_and_marks_the_follower(app, client, live, auth_headers):
    add_followers(app, 1)
    sandbox(app).unsubscribe("o-000000")
    send(client, auth_headers)
    drain(app)
    (row,) = rows(app)
    assert (row.state, row.error_code, row.reason) == ("blocked", 43004, "not_following")
    assert client.get("/api/v1/followers/o-000000", headers=auth_headers).json["subscribed"] is False


def test_permanent_error_is_not_retried(app, client, live, auth_headers):
    add_followers(app, 1)
    sandbox(app).set_templates("SOME_OTHER_ID")
    send(client, auth_headers)
    drain(app)
    (row,) = rows(app)
    assert (row.state, row.error_code, row.retries) == ("error", 40037, 0)
    assert len(template_sends(app)) == 1


def test_render_error_names_the_field(app, client, live, auth_headers):
    add_followers(app, 1)
    send(client, auth_headers, template="appointment_reminder")  # needs data.at
    drain(app)
    (row,) = rows(app)
    assert row.state == "error" and row.reason == "render" and "time2" in row.detail
    assert template_sends(app) == []


def test_busy_is_retried_with_backoff(app, client, live, auth_headers):
    add_followers(app, 1)
    sandbox(app).fail_next("oa/message/template/send", count=2, errcode=-1)
    send(client, auth_headers)
    drain(app)
    (row,) = rows(app)
    assert (row.state, row.retries, row.attempts) == ("sent", 2, 3)
    assert [c["errcode"] for c in template_sends(app)] == [-1, -1, 0]


def test_retries_run_out_into_error(app, client, live, auth_headers):
    add_followers(app, 1)
    sandbox(app).fail_next("oa/message/template/send", count=50, errcode=45009)
    send(client, auth_headers)
    drain(app)
    (row,) = rows(app)
    assert (row.state, row.reason, row.retries) == ("error", "retries_exhausted", 6)


def test_expired_token_is_refreshed_once(app, client, live, auth_headers):
    add_followers(app, 2)
    send(client, auth_headers)
    drain(app)
    sandbox(app).expire_tokens()
    send(client, auth_headers, openid="o-000001")
    drain(app)
    assert [r.state for r in rows(app)] == ["sent", "sent"]
    assert [c["errcode"] for c in template_sends(app)] == [0, 42001, 0]


def test_read_timeout_is_unknown_and_never_resent(app, client, live, auth_headers):
    svc(app).settings = svc(app).settings.replace(http_timeout=1)
    add_followers(app, 1)
    sandbox(app).set_delay(1.5, "oa/message/template/send")
    send(client, auth_headers)
    drain(app)
    (row,) = rows(app)
    assert row.state == "unknown" and row.reason == "timeout"
    sandbox(app).set_delay(0, "oa/message/template/send")
    drain(app)
    assert len(template_sends(app)) == 1


def test_frequency_cap_skips(app, client, live, auth_headers):
    svc(app).settings = with_messaging(svc(app).settings, freq_cap=2)
    add_followers(app, 1)
    for i in range(3):
        send(client, auth_headers, key=f"cap-{i}")
    drain(app)
    assert [(r.state, r.reason) for r in rows(app)] == [("sent", None), ("sent", None), ("skipped", "frequency_cap")]


def test_quiet_hours_defer_to_their_end(app, client, live, auth_headers):
    from scrm import guards

    local = guards.local_now(guards.SendRules(), utcnow())
    start, end = (local - timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=2)).strftime("%H:%M")
    svc(app).settings = with_messaging(svc(app).settings, quiet_hours=f"{start}-{end}")
    add_followers(app, 1)
    send(client, auth_headers)
    run_once(app)
    (row,) = rows(app)
    assert (row.state, row.reason) == ("queued", "quiet_hours") and row.job is None
    assert timedelta(hours=1, minutes=58) < row.send_after - utcnow() < timedelta(hours=2, minutes=1)
    assert template_sends(app) == []


def run_once(app):
    run_worker(app, burst=True)
    with app.app_context():
        pump()
    run_worker(app, burst=True)


def _interaction(app, openid, kind, ago):
    with svc(app).db.transaction() as s:
        fid = s.scalar(select(Follower.id).where(Follower.openid == openid))
        s.add(
            Interaction(
                dedup_key=f"{openid}-{kind}-{ago}",
                channel="oa",
                kind=kind,
                follower_id=fid,
                openid=openid,
                payload={},
                at=utcnow() - ago,
            )
        )


def test_customer_service_window_and_quota(app, client, live, auth_headers):
    svc(app).settings = with_messaging(svc(app).settings, cs_per_window=2, freq_cap=0)
    add_followers(app, 2)
    _interaction(app, "o-000000", "text", timedelta(hours=3))
    _interaction(app, "o-000001", "text", timedelta(hours=49))
    for i in range(3):
        send(client, auth_headers, template="chatbot_followup", channel="custom", key=f"cs-{i}", data={"topic": "价格"})
    send(client, auth_headers, openid="o-000001", template="chatbot_followup", key="late")
    drain(app)
    got = [(r.openid, r.state, r.reason) for r in rows(app)]
    assert got == [
        ("o-000000", "sent", None),
        ("o-000000", "sent", None),
        ("o-000000", "skipped", "cs_quota"),
        ("o-000001", "skipped", "outside_window"),
    ]
    calls = sandbox(app).sent("oa/message/custom/send")
    assert len(calls) == 2 and "价格" in calls[0]["body"]["text"]["content"]


def test_early_callback_is_applied_when_sent_is_recorded(app):
    from scrm import deliveries

    add_followers(app, 1)
    with svc(app).db.transaction() as s:
        s.add(
            Interaction(
                dedup_key="early",
                channel="oa",
                kind="templatesendjobfinish",
                openid="o-000000",
                msg_id="777",
                event_key="success",
                payload={},
                at=utcnow(),
            )
        )
        f = s.scalar(select(Follower))
        row, _ = deliveries.create(s, f, "event_checkin", "template", "early-key", {}, "test")
        row.state = "sending"
    with app.app_context(), svc(app).db.transaction() as s:
        deliveries.record(s, [(row.id, deliveries.Result("sent", msgid="777"))], rules(), utcnow())
    assert rows(app, Delivery.key == "early-key")[0].state == "delivered"


def test_rep_sees_only_the_deliveries_of_its_leads(app, client, live, auth_headers):
    from welead.auth import issue

    add_followers(app, 2)
    with svc(app).db.transaction() as s:
        s.add(Rep(id=5, userid="r5", name="R", created_at=utcnow()))
        s.flush()
        s.scalar(select(Follower).where(Follower.openid == "o-000000")).owner_id = 5
        rep = issue(s, "rep-5", "rep", subject="5")
        staff = issue(s, "staff-1", "staff", subject="expo")
    send(client, auth_headers, openid="o-000000")
    send(client, auth_headers, openid="o-000001")
    headers = {"Authorization": f"Bearer {rep}"}
    mine = client.get("/api/v1/deliveries", query_string={"openid": "o-000000"}, headers=headers)
    assert mine.status_code == 200 and [d["openid"] for d in mine.json["items"]] == ["o-000000"]
    assert client.get("/api/v1/deliveries", query_string={"openid": "o-000001"}, headers=headers).status_code == 404
    assert client.get("/api/v1/deliveries", headers=headers).status_code == 403
    staff_headers = {"Authorization": f"Bearer {staff}"}
    assert (
        client.get("/api/v1/deliveries", query_string={"openid": "o-000000"}, headers=staff_headers).status_code == 403
    )

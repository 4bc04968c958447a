"""The outbound clients against the sandbox over real HTTP: shared tokens, one refresh, typed errors, API shapes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from wechat.api import OAClient, WeComClient
from wechat.errors import NotSent, Unknown, WeChatAPIError
from wechat.sandbox_state import SandboxControl
from wechat.transport import TokenCache

TPL = "message/template/send"


@pytest.fixture
def svc(app, live):
    return app.extensions["welead"]  # `live` has pointed its API bases at the served sandbox


@pytest.fixture
def ctl(svc) -> SandboxControl:
    return SandboxControl(svc.redis_slow)


@pytest.fixture
def make(svc) -> Iterator:
    """Build clients like a worker process would; each call is a separate process's client."""
    made: list[OAClient | WeComClient] = []

    def build(cls=OAClient, timeout: float | None = None, **changes):
        client = cls(svc.settings.replace(**changes), svc.redis_slow, timeout=timeout)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


@pytest.fixture
def oa(make) -> OAClient:
    return make()


@pytest.fixture
def wecom(make) -> WeComClient:
    return make(WeComClient)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def one_shot_server(answer: bytes | None) -> Iterator[str]:
    """A TCP server that reads one request, then sends `answer` raw (None: closes without a word)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            if answer is not None:
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/cgi-bin/"
    finally:
        thread.join(5)
        listener.close()


# --- errors: classification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "retryable", "token", "blocked"),
    [(-1, True, False, False), (45009, True, False, False), (40001, False, True, False),
     (40014, False, True, False), (42001, False, True, False), (43004, False, False, True),
     (40037, False, False, False), (47003, False, False, False)],
)  # fmt: skip
def test_error_classification(errcode, retryable, token, blocked):
    error = WeChatAPIError(errcode, "x")
    assert (error.retryable, error.token_problem, error.blocked) == (retryable, token, blocked)
    assert error.permanent == (not retryable and not token)
    assert WeChatAPIError.is_retryable(errcode) == retryable and WeChatAPIError.is_token_problem(errcode) == token
    assert NotSent("x").retryable and not Unknown("x").retryable


# --- tokens -------------------------------------------------------------------------------------------------------


def test_token_is_shared_by_clients(make, ctl, svc):
    first, second = make(), make()
    first.user_info("o1")
    second.user_info("o2")
    assert ctl.calls("oa/token") == 1
    ttl = svc.redis_slow.ttl(first.tokens.key)
    assert 6800 < ttl <= 6900  # expires_in 7200 minus a margin


def test_token_ttl_follows_expires_in(make, ctl, svc):
    ctl.set_token_ttl(100)
    client = make()
    client.user_info("o1")
    assert 70 < svc.redis_slow.ttl(client.tokens.key) <= 80


def test_concurrent_clients_fetch_one_token(make, ctl):
    clients = [make() for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    results: list[object] = []

    def run(client: OAClient) -> None:
        barrier.wait()
        try:
            results.append(client.user_info("o1")["subscribe"])
        except (WeChatAPIError, NotSent, Unknown) as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [1] * 8
    assert ctl.calls("oa/token") == 1


def test_refused_token_is_refreshed_once(oa, ctl):
    oa.user_info("o1")
    ctl.revoke_tokens()
    assert oa.user_info("o1")["subscribe"] == 1
    assert [r["errcode"] for r in ctl.sent("oa/user/info")] == [0, 40001, 0]
    assert ctl.calls("oa/token") == 2


def test_expired_token_is_refreshed(oa, ctl):
    oa.user_info("o1")
    ctl.expire_tokens()
    assert oa.user_info("o1")["subscribe"] == 1
    assert [r["errcode"] for r in ctl.sent("oa/user/info")] == [0, 42001, 0]


def test_token_refresh_is_not_repeated_forever(oa, ctl):
    ctl.fail_next("oa/user/info", count=5, errcode=40001)
    with pytest.raises(WeChatAPIError) as caught:
        oa.user_info("o1")
    assert caught.value.errcode == 40001 and caught.value.token_problem and not caught.value.retryable
    assert ctl.calls("oa/user/info") == 2
    assert ctl.calls("oa/token") == 2


def test_invalidate_only_removes_the_token_that_failed(svc):
    fetches: list[int] = []
    cache = TokenCache(svc.redis_slow, "welead:test:token", lambda: fetches.append(1) or {"access_token": "new"}, 5)
    svc.redis_slow.set(cache.key, "replaced-by-another-process")
    assert cache.invalidate("old") is False
    assert cache.get() == "replaced-by-another-process" and not fetches
    assert cache.invalidate("replaced-by-another-process") is True
    assert cache.get() == "new" and fetches == [1]


def test_token_fetch_errors_are_typed(make, ctl):
    with pytest.raises(WeChatAPIError) as caught:
        make(wechat_app_secret="wrong").user_info("o1")
    assert caught.value.errcode == 40125 and caught.value.permanent
    ctl.fail_next("oa/token", errcode=-1)
    with pytest.raises(WeChatAPIError) as caught:
        make().user_info("o1")
    assert caught.value.retryable
    assert ctl.calls("oa/user/info") == 0


def test_wecom_token_is_shared(make, ctl):
    make(WeComClient).send_text(["rep1"], "a")
    make(WeComClient).send_text(["rep1"], "b")
    assert ctl.calls("wecom/gettoken") == 1


# --- failures: what may be resent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("errcode", [-1, 45009])
def test_busy_and_quota_are_retryable_and_not_retried_here(oa, ctl, errcode):
    ctl.fail_next(f"oa/{TPL}", errcode=errcode)
    with pytest.raises(WeChatAPIError) as caught:
        oa.send_template("oA", "tpl", {"k": "v"})
    assert caught.value.errcode == errcode and caught.value.retryable
    assert ctl.calls(f"oa/{TPL}") == 1


def test_rate_limit_answers_45009(oa, ctl):
    ctl.set_rate_limit(1, f"oa/{TPL}")
    errors = []
    for _ in range(3):
        try:
            oa.send_template("oA", "tpl", {"k": "v"})
        except WeChatAPIError as exc:
            errors.append(exc.errcode)
    assert errors and set(errors) == {45009}


def test_blocked_and_permanent(oa, ctl):
    ctl.unsubscribe("oGone")
    with pytest.raises(WeChatAPIError) as caught:
        oa.send_template("oGone", "tpl", {"k": "v"})
    assert caught.value.blocked and caught.value.permanent
    ctl.set_templates("tpl")
    with pytest.raises(WeChatAPIError) as caught:
        oa.send_template("oA", "other", {"k": "v"})
    assert caught.value.errcode == 40037 and caught.value.permanent


def test_connection_refused_is_not_sent(make):
    base = f"http://127.0.0.1:{_free_port()}/cgi-bin/"
    with pytest.raises(NotSent):
        make(wechat_api_base=base).user_info("o1")  # the token fetch cannot connect
    client = make(wechat_api_base=base)
    client.tokens.redis.set(client.tokens.key, "cached-token")
    with pytest.raises(NotSent):
        client.send_template("oA", "tpl", {"k": "v"})  # the API call itself cannot connect


def test_unreachable_proxy_is_not_sent(make, monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_free_port()}")
    client = make()
    client.tokens.redis.set(client.tokens.key, "cached-token")
    with pytest.raises(NotSent):
        client.send_template("oA", "tpl", {"k": "v"})


def test_read_timeout_is_unknown_and_the_message_went_out(make, ctl):
    ctl.set_delay(1.5, f"oa/{TPL}")
    client = make(timeout=0.5)
    with pytest.raises(Unknown):
        client.send_template("oA", "tpl", {"k": "v"})
    assert len(ctl.sent(f"oa/{TPL}", ok_only=True)) == 1  # delivered: resending would duplicate it


@pytest.mark.parametrize(
    "answer",
    [None, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>"],
    ids=["dropped", "502", "not-json"],
)  # fmt: skip
def test_lost_answers_are_unknown(make, answer):
    with one_shot_server(answer) as base:
        client = make(wechat_api_base=base)
        client.tokens.redis.set(client.tokens.key, "cached-token")
        with pytest.raises(Unknown):
            client.send_template("oA", "tpl", {"k": "v"})


def test_http_404_is_permanent(oa):
    with pytest.raises(WeChatAPIError) as caught:
        oa.raw.get("no/such/api")
    assert caught.value.errcode == 404 and caught.value.permanent


# --- OA calls -----------------------------------------------------------------------------------------------------


def test_user_info(oa, ctl):
    ctl.set_user("oQR", subscribe_scene="ADD_SCENE_QR_CODE", qr_scene_str="rep:7")
    info = oa.user_info("oQR")
    assert info["subscribe"] == 1 and info["qr_scene_str"] == "rep:7" and info["unionid"]


def test_create_tag_finds_an_existing_one(oa, ctl):
    tag_id = oa.create_tag("vip")
    assert oa.create_tag("vip") == tag_id
    assert [r["errcode"] for r in ctl.sent("oa/tags/create")] == [0, 45157]
    assert ctl.calls("oa/tags/get") == 1


def test_tag_users_in_chunks_of_50(oa, ctl):
    tag_id = oa.create_tag("expo")
    openids = [f"o{i:03d}" for i in range(120)]
    assert oa.tag_users(tag_id, openids) == 3
    batches = [r["body"]["openid_list"] for r in ctl.sent("oa/tags/members/batchtagging")]
    assert [len(b) for b in batches] == [50, 50, 20]
    assert [openid for batch in batches for openid in batch] == openids
    assert ctl.state()["tags"] == [{"id": tag_id, "name": "expo", "count": 120}]
    assert oa.tag_users(tag_id, []) == 0


def test_send_template(oa, ctl):
    msgid = oa.send_template("oA", "tpl", {"name": "Li", "when": {"value": "today"}}, url="https://x.test/",
                             miniprogram={"appid": "wxmini", "pagepath": "p"}, client_msg_id="b1:oA")  # fmt: skip
    assert msgid > 0
    body = ctl.sent(f"oa/{TPL}")[0]["body"]
    assert body == {
        "touser": "oA", "template_id": "tpl", "data": {"name": {"value": "Li"}, "when": {"value": "today"}},
        "url": "https://x.test/", "miniprogram": {"appid": "wxmini", "pagepath": "p"}, "client_msg_id": "b1:oA",
    }  # fmt: skip
    assert oa.send_template("oA", "tpl", {"name": "Li"}, client_msg_id="b1:oA") == msgid  # WeChat dedups


def test_send_custom_text(oa, ctl):
    oa.send_custom_text("oA", "你好")
    assert ctl.sent("oa/message/custom/send")[0]["body"]["text"] == {"content": "你好"}
    ctl.unsubscribe("oA")
    with pytest.raises(WeChatAPIError) as caught:
        oa.send_custom_text("oA", "again")
    assert caught.value.errcode == 45015


def test_create_qrcode(oa, ctl):
    temp = oa.create_qrcode("booth:expo:a1", permanent=False, expire_seconds=3600)
    assert temp["expire_seconds"] == 3600 and temp["ticket"] and temp["url"]
    permanent = oa.create_qrcode(7, permanent=True)
    assert permanent["expire_seconds"] is None
    bodies = [r["body"] for r in ctl.sent("oa/qrcode/create")]
    assert bodies == [
        {
            "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": "booth:expo:a1"}},
            "expire_seconds": 3600,
        },
        {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 7}}},
    ]
    with pytest.raises(TypeError):
        oa.create_qrcode(True, permanent=True)
    with pytest.raises(WeChatAPIError) as caught:
        oa.create_qrcode("x" * 65, permanent=True)
    assert caught.value.errcode == 47003


def test_create_menu(oa, ctl):
    menu = {"button": [{"type": "click", "name": "Price", "key": "PRICE"}]}
    oa.create_menu(menu)
    assert ctl.state()["menu"] == menu
    with pytest.raises(WeChatAPIError) as caught:
        oa.create_menu({"button": []})
    assert caught.value.errcode == 40016


# --- WeCom calls --------------------------------------------------------------------------------------------------


def test_wecom_send_text_and_markdown(wecom, ctl):
    assert wecom.send_text(["rep1", "rep2"], "hot lead") == []
    ctl.set_wecom_members("rep1")
    assert wecom.send_markdown(["rep1", "rep2"], "**hot**") == ["rep2"]
    bodies = [r["body"] for r in ctl.sent("wecom/message/send")]
    assert bodies[0]["touser"] == "rep1|rep2" and bodies[0]["text"] == {"content": "hot lead"}
    assert bodies[1]["msgtype"] == "markdown" and bodies[1]["agentid"] == int(wecom.agent_id)
    with pytest.raises(WeChatAPIError) as caught:
        wecom.send_text(["ghost"], "x")
    assert caught.value.errcode == 81013


def test_wecom_contact_way_and_external_contact(wecom, ctl):
    way = wecom.add_contact_way("rep:1", ["rep1"])
    assert way["config_id"] and way["qr_code"]
    wecom.add_contact_way("booth:expo:a1", ["rep1", "rep2"], remark="Expo booth")
    bodies = [r["body"] for r in ctl.sent("wecom/externalcontact/add_contact_way")]
    assert [b["type"] for b in bodies] == [1, 2] and bodies[1]["remark"] == "Expo booth"
    ctl.set_external_contact("wmC1", userid="rep1", state="rep:1")
    contact = wecom.get_external_contact("wmC1")
    assert contact["external_contact"]["external_userid"] == "wmC1"
    assert contact["follow_user"][0]["state"] == "rep:1" and "errcode" not in contact

"""The simulator builds callbacks that wechatpy (WeChat's reference behaviour) accepts: signatures, AES, fields."""

from __future__ import annotations

import pytest
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto as OACrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature
from wechatpy.work import parse_message as parse_work_message
from wechatpy.work.crypto import WeChatCrypto as WorkCrypto

from foundation.config import Settings
from tests.helpers import drain
from wechat.simulate import (
    KINDS,
    OA_EVENTS,
    build_callback,
    build_message,
    build_verification,
    callback_path,
    is_wecom,
    read_reply,
    sign,
)

# wechatpy tests/test_crypto.py
V_TOKEN = "123456"
V_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
V_ID = "wx49f0ab532d5d035a"
V_ECHO = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
V_REPLY = """<xml>
<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>
<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>
<TimeStamp>1411525903</TimeStamp>
<Nonce><![CDATA[461056294]]></Nonce>
</xml>"""

PLAIN = Settings(wechat_app_id="wxplain", wechat_token="plain-token", wecom_aes_key=V_KEY, wecom_corp_id=V_ID)
VECTOR = Settings(
    wechat_app_id=V_ID,
    wechat_token=V_TOKEN,
    wechat_aes_key=V_KEY,
    wecom_corp_id=V_ID,
    wecom_token=V_TOKEN,
    wecom_aes_key=V_KEY,
    wecom_agent_id="1",
)
OPTIONS = {"scene": "booth:expo:a1", "key": "MENU_PRICE", "url": "https://example.com/p", "msg_id": 42}


def test_signature_vectors():
    assert sign("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"
    assert sign(V_TOKEN, "1411443780", "437374425", V_ECHO) == "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"


def test_read_reply_decrypts_the_wechatpy_vector():
    plain = read_reply(V_REPLY.encode(), VECTOR, "wecom")
    message = xmltodict.parse(plain)["xml"]
    assert message["Content"] == "test" and message["ToUserName"] == "messense"


def test_read_reply_rejects_a_tampered_signature():
    with pytest.raises(InvalidSignatureException):
        read_reply(V_REPLY.replace("407518b7", "00000000"), VECTOR, "wecom")


def test_read_reply_passes_plaintext_through():
    assert read_reply(b"success", VECTOR, "oa") == "success"


def test_plaintext_oa_callback_verifies():
    query, body = build_callback("subscribe", PLAIN, scene="rep:7", openid="oFollower1", create_time=1700000000)
    check_signature(PLAIN.wechat_token, query["signature"], query["timestamp"], query["nonce"])
    assert "encrypt_type" not in query and query["openid"] == "oFollower1"
    msg = parse_message(body)
    assert (msg.type, msg.event, msg.source) == ("event", "subscribe_scan", "oFollower1")  # wechatpy's name
    assert msg.scene_id == "rep:7" and msg.ticket and msg.create_time.timestamp() == 1700000000


def test_safe_mode_oa_callback_decrypts_with_wechatpy():
    query, body = build_callback("text", VECTOR, content="价格? ]]> <b>", openid="oF2")
    assert query["encrypt_type"] == "aes"
    check_signature(V_TOKEN, query["signature"], query["timestamp"], query["nonce"])
    envelope = xmltodict.parse(body)["xml"]
    assert set(envelope) == {"ToUserName", "Encrypt"}
    plain = OACrypto(V_TOKEN, V_KEY, V_ID).decrypt_message(body, query["msg_signature"], query["timestamp"],
                                                           query["nonce"])  # fmt: skip
    msg = parse_message(plain)
    assert (msg.type, msg.content, msg.source) == ("text", "价格? ]]> <b>", "oF2")


def test_wecom_callback_is_encrypted_for_the_corp():
    query, body = build_callback(
        "wecom-add-contact", VECTOR, userid="rep1", external_userid="wmC1", state="booth:expo:a1"
    )
    assert set(query) == {"msg_signature", "timestamp", "nonce"}
    plain = WorkCrypto(V_TOKEN, V_KEY, V_ID).decrypt_message(body, query["msg_signature"], query["timestamp"],
                                                             query["nonce"])  # fmt: skip
    msg = parse_work_message(plain)
    assert msg.event == "change_external_contact" and msg.change_type == "add_external_contact"
    assert (msg.user_id, msg.external_user_id, msg.state) == ("rep1", "wmC1", "booth:expo:a1")
    assert msg.welcome_code and msg.source == "sys"


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_builds_and_parses(kind):
    query, body = build_callback(kind, VECTOR, **OPTIONS)
    crypto = WorkCrypto(V_TOKEN, V_KEY, V_ID) if is_wecom(kind) else OACrypto(V_TOKEN, V_KEY, V_ID)
    plain = crypto.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"])
    fields = xmltodict.parse(plain)["xml"]
    if kind in OA_EVENTS:
        assert fields["MsgType"] == "event" and fields["Event"] == OA_EVENTS[kind]
    elif not is_wecom(kind):
        assert fields["MsgType"] == kind and fields["MsgId"] == "42"
    parsed = (parse_work_message if is_wecom(kind) else parse_message)(plain)
    assert parsed.type != "unknown"
    assert callback_path(kind) == ("/wecom/callback" if is_wecom(kind) else "/wechat/callback")


def test_event_fields():
    assert build_message("scan", PLAIN, scene="42")["EventKey"] == "42"
    assert build_message("subscribe", PLAIN)["EventKey"] == ""
    assert build_message("view", PLAIN, url="https://x.test/")["EventKey"] == "https://x.test/"
    status = build_message("template-status", PLAIN, msg_id=7, status="failed:user block")
    assert (status["MsgID"], status["Status"]) == (7, "failed:user block")
    mass = build_message("mass-status", PLAIN, msg_id=9, total_count=10, sent_count=8)
    assert (mass["MsgID"], mass["Status"], mass["SentCount"], mass["ErrorCount"]) == (9, "send success", 8, 2)
    location = build_message("location-event", PLAIN, latitude=1.5, longitude=2.5)
    assert (location["Latitude"], location["Longitude"]) == (1.5, 2.5)


def test_required_options_and_typos():
    with pytest.raises(ValueError, match="--scene"):
        build_message("scan", PLAIN)
    with pytest.raises(ValueError, match="--key"):
        build_message("click", PLAIN)
    with pytest.raises(TypeError, match="sceen"):
        build_message("scan", PLAIN, sceen="1")
    with pytest.raises(ValueError, match="unknown callback kind"):
        build_message("poke", PLAIN)


def test_text_messages_get_distinct_msg_ids_unless_given():
    ids = {build_message("text", PLAIN)["MsgId"] for _ in range(50)}
    assert len(ids) == 50
    assert build_message("text", PLAIN, msg_id=99)["MsgId"] == 99


def test_events_get_the_same_dedup_key_for_the_same_second():
    a = build_message("click", PLAIN, key="K", create_time=1700000000)
    b = build_message("click", PLAIN, key="K", create_time=1700000000)
    assert a == b


def test_oa_verification_is_plain():
    query, expected = build_verification("oa", PLAIN, echostr="hello-echo")
    check_signature(PLAIN.wechat_token, query["signature"], query["timestamp"], query["nonce"])
    assert query["echostr"] == expected == "hello-echo"


def test_wecom_verification_is_encrypted():
    query, expected = build_verification("wecom", VECTOR)
    assert query["echostr"] != expected
    crypto = WorkCrypto(V_TOKEN, V_KEY, V_ID)
    assert crypto.check_signature(query["msg_signature"], query["timestamp"], query["nonce"], query["echostr"]) == (
        expected
    )


# --- the CLI against a running WeLead ---------------------------------------------------------------------------------


def test_cli_simulate_subscribe(runner, live, client, auth_headers):
    result = runner.invoke(args=["wechat", "simulate", "subscribe", "--scene", "rep:7", "--openid", "oCli1",
                                 "--url", live])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "<- 200" in result.output and "success" in result.output
    drain(client.application)
    follower = client.get("/api/v1/followers/oCli1", headers=auth_headers)
    assert follower.status_code == 200 and follower.json["source"] == "rep:7"


def test_cli_simulate_wecom_and_text(runner, live):
    for args in (["wecom-add-contact", "--userid", "rep1", "--state", "rep:1"], ["text", "--content", "hi"]):
        result = runner.invoke(args=["wechat", "simulate", *args, "--url", live, "--show"])
        assert result.exit_code == 0, result.output
        assert "<- 200" in result.output


def test_cli_simulate_reports_usage_errors(runner, live):
    result = runner.invoke(args=["wechat", "simulate", "scan", "--url", live])
    assert result.exit_code == 2 and "--scene" in result.output


def test_cli_simulate_unreachable_server(runner):
    result = runner.invoke(args=["wechat", "simulate", "text", "--url", "http://127.0.0.1:9", "--timeout", "2"])
    assert result.exit_code == 1 and "failed" in result.output


@pytest.mark.parametrize("channel", ["oa", "wecom"])
def test_cli_verify(runner, live, channel):
    result = runner.invoke(args=["wechat", "verify", channel, "--url", live])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output


def test_cli_simulate_subscribe_tells_the_sandbox_the_scene(runner, live, client, auth_headers):
    """The profile job's user/info then answers the scene the follower came by, as WeChat would."""
    from tasks.worker import run_worker

    result = runner.invoke(args=["wechat", "simulate", "subscribe", "--scene", "booth:expo:A1", "--openid", "oCliQR",
                                 "--url", live])  # fmt: skip
    assert result.exit_code == 0, result.output
    drain(client.application)
    run_worker(client.application, burst=True)
    profile = client.get("/api/v1/followers/oCliQR", headers=auth_headers).json["profile"]
    assert profile["subscribe_scene"] == "ADD_SCENE_QR_CODE" and profile["qr_scene_str"] == "booth:expo:A1"

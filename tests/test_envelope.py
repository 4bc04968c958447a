"""Authentication and parsing of callbacks, checked against fixed known vectors (wechatpy's official ones)."""

import pytest

from wechat.envelope import Endpoint, Rejected, open_callback, seal_reply, signature, verify_echo
from wechat.inbound import InvalidXML, parse_xml, to_inbound

TOKEN, KEY, APPID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
ECHO = {
    "msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
    "timestamp": "1411443780",
    "nonce": "437374425",
    "echostr": "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
}
MESSAGE = (
    b"<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA["
    b"RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh"
    b"6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQq"
    b"Gp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7F"
    b"S709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>"
    b"\n<AgentID><![CDATA[1]]></AgentID>\n</xml>"
)
MESSAGE_ARGS = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "timestamp": "1411525903",
                "nonce": "461056294"}  # fmt: skip


def wecom(**kw) -> Endpoint:
    return Endpoint("wecom", TOKEN, kw.pop("receive_id", APPID), kw.pop("aes_key", KEY), **kw)


def test_plain_signature_worked_example():
    assert signature("AAAAA", "1714037059", "486452656") == "899cf89e464efb63f54ddac96b0a0a235f53aa78"


def test_echo_vector_decrypts():
    assert verify_echo(wecom(), ECHO, now=1411443780) == "5927782489442352469"


def test_echo_wrong_nonce_is_403():
    with pytest.raises(Rejected) as exc:
        verify_echo(wecom(), {**ECHO, "nonce": "437374424"}, now=1411443780)
    assert exc.value.status == 403


def test_oa_plain_echo_returns_echostr():
    ep = Endpoint("oa", "AAAAA", "wx1")
    args = {"signature": "899cf89e464efb63f54ddac96b0a0a235f53aa78", "timestamp": "1714037059",
            "nonce": "486452656", "echostr": "hello"}  # fmt: skip
    assert verify_echo(ep, args, now=1714037059) == "hello"


def test_message_vector_decrypts_to_inbound():
    msg, encrypted = open_callback(wecom(), MESSAGE_ARGS, MESSAGE, now=1411525903)
    assert encrypted and msg.kind == "text" and msg.openid == "messense" and msg.fields["Content"] == "test"


def test_replay_window():
    with pytest.raises(Rejected) as exc:
        open_callback(wecom(window=300), MESSAGE_ARGS, MESSAGE, now=1411525903 + 301)
    assert exc.value.status == 403 and "replay window" in exc.value.reason


def test_wrong_receive_id_is_403():
    with pytest.raises(Rejected) as exc:
        open_callback(wecom(receive_id="wxSomeoneElse"), MESSAGE_ARGS, MESSAGE, now=1411525903)
    assert exc.value.status == 403 and "AppID" in exc.value.reason


def test_previous_key_still_decrypts_during_rotation():
    other = "A" * 42 + "E"
    msg, _ = open_callback(wecom(aes_key=other, previous_aes_key=KEY), MESSAGE_ARGS, MESSAGE, now=1411525903)
    assert msg.fields["Content"] == "test"


def test_garbage_ciphertext_with_valid_signature_is_400():
    body = b"<xml><Encrypt>bm90IGEgY2lwaGVydGV4dA==</Encrypt></xml>"
    args = {"timestamp": "1411525903", "nonce": "1"}
    args["msg_signature"] = signature(TOKEN, args["timestamp"], args["nonce"], "bm90IGEgY2lwaGVydGV4dA==")
    with pytest.raises(Rejected) as exc:
        open_callback(wecom(), args, body, now=1411525903)
    assert exc.value.status == 400


def test_sealed_reply_opens_again():
    ep = wecom()
    sealed = seal_reply(ep, "<xml><Content>hi</Content></xml>", "99", "1411525903")
    doc = parse_xml(sealed.encode())
    assert doc["MsgSignature"] == signature(TOKEN, "1411525903", "99", doc["Encrypt"])


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><a>unclosed</xml>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml><c>&b;</c></xml>',
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><c>&e;</c></xml>',
        b"<notxml/>",
        b"",
    ],
)
def test_unsafe_or_malformed_xml_refused(body):
    with pytest.raises(InvalidXML):
        parse_xml(body)


def test_scene_strips_only_leading_prefix():
    doc = {"MsgType": "event", "Event": "subscribe", "EventKey": "qrscene_campaign:qrscene_x", "FromUserName": "o",
           "CreateTime": "1"}  # fmt: skip
    assert to_inbound("oa", doc).scene == "campaign:qrscene_x"
    assert to_inbound("oa", {**doc, "Event": "SCAN", "EventKey": "qrscene_y"}).scene == "qrscene_y"


def test_unknown_kind_is_not_an_error():
    msg = to_inbound("oa", {"MsgType": "event", "Event": "brand_new_event", "FromUserName": "o", "CreateTime": "5"})
    assert msg.kind == "brand_new_event" and msg.is_event


def test_event_dedup_key_includes_event_key():
    base = {"MsgType": "event", "Event": "CLICK", "FromUserName": "o", "CreateTime": "5", "EventKey": "A"}
    assert to_inbound("oa", base).dedup_key == to_inbound("oa", dict(base)).dedup_key
    assert to_inbound("oa", base).dedup_key != to_inbound("oa", {**base, "EventKey": "B"}).dedup_key

import time

from foundation.config import SANDBOX_TOKEN
from tests.helpers import drain
from wechat.envelope import signature


def _plain(client, xml: str, token: str = SANDBOX_TOKEN):
    ts, nonce = str(int(time.time())), "123"
    return client.post(
        "/wechat/callback",
        query_string={"signature": signature(token, ts, nonce), "timestamp": ts, "nonce": nonce},
        data=xml,
    )


def test_subscribe_recorded(client, auth_headers):
    xml = (
        "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime>"
        "<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_rep:7</EventKey></xml>"
    )
    for _ in range(3):
        r = _plain(client, xml)
        assert r.status_code == 200 and r.data == b"success"
    drain(client.application)
    r = client.get("/api/v1/followers/o1", headers=auth_headers)
    assert r.status_code == 200, r.json
    assert r.json["subscribed"] is True and r.json["source"] == "rep:7"
    r = client.get("/api/v1/followers/o1/timeline", headers=auth_headers)
    assert [e["kind"] for e in r.json] == ["assignment_skipped", "subscribe"]  # no rep 7: why nobody owns o1

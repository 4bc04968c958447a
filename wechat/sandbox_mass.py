"""The sandbox's fake of `message/mass/send` (a mass message to a list of openids), added to the OA fakes.

Kept apart from wechat/sandbox.py (another engineer's file) until it moves there: importing this module registers the
endpoint in `OA_APIS`, so it goes through the same switches (failures, rate limit, token check) and call records.
WeChat's rules kept: 2 to 10,000 openids (40130 otherwise), and `clientmsgid` refuses a repeat for a day (45065).
"""

from __future__ import annotations

from wechat.sandbox import OA_APIS, PREFIX, ApiError, Call, SandboxControl, ok

MASS_MIN, MASS_MAX = 2, 10_000
CLIENT_WINDOW = 86_400
MSG_SEQ = PREFIX + "oa:mass_seq"
CLIENT_IDS = PREFIX + "oa:mass_client:"


def oa_mass_send(ctl: SandboxControl, call: Call) -> dict:
    users = call.need("touser")
    if not isinstance(users, list) or not MASS_MIN <= len(users) <= MASS_MAX:
        raise ApiError(40130, "invalid openid list size, at least two openid")
    msgtype = str(call.need("msgtype"))
    if msgtype == "text":
        call.need("text.content")
    elif not isinstance(call.body.get(msgtype), dict):
        raise ApiError(47003, f"argument invalid! data.{msgtype} is empty")
    client_id = call.body.get("clientmsgid")
    if client_id and not ctl.redis.set(CLIENT_IDS + str(client_id), 1, nx=True, ex=CLIENT_WINDOW):
        raise ApiError(45065, "clientmsgid exist")
    msg_id = int(ctl.redis.incr(MSG_SEQ)) + 1_000_000_000
    return ok(msg_id=msg_id, msg_data_id=msg_id * 10)


OA_APIS.setdefault("message/mass/send", ("POST", oa_mass_send))

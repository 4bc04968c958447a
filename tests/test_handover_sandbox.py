"""The sandbox's customer transfers behave like WeCom's: 100 a call, twice in 90 days on the job, one waiting transfer
per customer, resigned members only for 离职继承, results paged; and the client reads them right."""

import pytest

from wechat import sandbox_transfer as fake
from wechat.api import WeComClient
from wechat.errors import WeChatAPIError
from wechat.sandbox_state import SandboxControl


@pytest.fixture
def wecom(app, live):
    svc = app.extensions["welead"]
    client = WeComClient(svc.settings, svc.redis_slow)
    yield client
    client.close()


@pytest.fixture
def conn(app):
    return app.extensions["welead"].redis_slow


@pytest.fixture
def sandbox(conn):
    return SandboxControl(conn)


def test_accepted_then_taken_over(wecom, conn):
    assert wecom.transfer_customers("ann", "bob", ["wm1", "wm2"]) == {"wm1": 0, "wm2": 0}
    assert {e: r["status"] for e, r in wecom.transfer_results("ann", "bob").items()} == {"wm1": 2, "wm2": 2}
    fake.settle(conn, "wm1", fake.DONE)
    fake.settle(conn, "wm2", fake.REFUSED)
    results = wecom.transfer_results("ann", "bob")
    assert (results["wm1"]["status"], results["wm2"]["status"]) == (1, 3)
    assert wecom.get_external_contact("wm1")["follow_user"][0]["userid"] == "bob"  # the contact follows bob now


def test_twice_in_90_days_then_40128(wecom, conn):
    for handover, takeover in (("ann", "bob"), ("bob", "cy")):
        assert wecom.transfer_customers(handover, takeover, ["wm1"]) == {"wm1": 0}
        fake.settle(conn, "wm1", fake.DONE)
    assert wecom.transfer_customers("cy", "dan", ["wm1"]) == {"wm1": 40128}
    assert len(fake.records(conn, "wm1")) == 2


def test_one_waiting_transfer_per_customer(wecom):
    assert wecom.transfer_customers("ann", "bob", ["wm1"]) == {"wm1": 0}
    assert wecom.transfer_customers("ann", "cy", ["wm1"]) == {"wm1": 40129}


def test_more_than_100_is_refused(wecom):
    with pytest.raises(ValueError, match="1 to 100"):
        wecom.transfer_customers("ann", "bob", [f"wm{i}" for i in range(101)])
    body = {"handover_userid": "ann", "takeover_userid": "bob", "external_userid": [f"wm{i}" for i in range(101)]}
    with pytest.raises(WeChatAPIError) as exc:
        wecom.raw.post("externalcontact/transfer_customer", data=body)
    assert exc.value.errcode == 40058


def test_bad_calls(wecom, conn):
    with pytest.raises(WeChatAPIError) as same:
        wecom.transfer_customers("ann", "ann", ["wm1"])
    with pytest.raises(WeChatAPIError) as employed:
        wecom.transfer_customers("ann", "bob", ["wm1"], resigned=True)
    assert (same.value.errcode, employed.value.errcode) == (40130, 40097)
    fake.resign(conn, "ann")
    with pytest.raises(WeChatAPIError) as gone:
        wecom.transfer_customers("ann", "bob", ["wm1"])  # a member who left has no on-the-job transfers
    assert gone.value.errcode == 60111
    assert wecom.transfer_customers("ann", "bob", ["wm1"], resigned=True) == {"wm1": 0}
    assert list(wecom.transfer_results("ann", "bob", resigned=True)) == ["wm1"]
    assert wecom.transfer_results("ann", "bob") == {}


def test_customers_of_someone_else_or_gone(wecom, sandbox):
    sandbox.set_external_contact("wm1", userid="zed")
    sandbox.set_external_contact("wm2", deleted=True)
    assert wecom.transfer_customers("ann", "bob", ["wm1", "wm2", "wm3"]) == {"wm1": 40131, "wm2": 84061, "wm3": 0}


def test_user_delete_resigns_the_member(wecom, conn):
    wecom.raw.get("user/delete", params={"userid": "ann"})
    assert conn.sismember(fake.RESIGNED, "ann")
    assert wecom.transfer_customers("ann", "bob", ["wm1"], resigned=True) == {"wm1": 0}


def test_results_are_paged(wecom, sandbox):
    for start in range(0, 1500, 100):
        wecom.transfer_customers("ann", "bob", [f"wm{i}" for i in range(start, start + 100)])
    assert len(wecom.transfer_results("ann", "bob")) == 1500
    pages = sandbox.sent("wecom/externalcontact/transfer_result")
    assert [c["body"]["cursor"] for c in pages] == ["", "1000"]

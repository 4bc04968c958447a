"""A rep's personal codes against the sandbox: made once, WeChat/WeCom refusals named, the printable PNG decoded."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from scrm import qr_image
from scrm.code_rules import CodeRuleError, check_code, check_scene, check_state
from tests.test_reps import add, token
from wechat.sandbox_state import SandboxControl

OA_QR, WAY = "oa/qrcode/create", "wecom/externalcontact/add_contact_way"


@pytest.fixture
def sandbox(app) -> SandboxControl:
    return SandboxControl(app.extensions["welead"].redis_slow)


@pytest.fixture
def rep(client, auth_headers) -> dict:
    return add(client, auth_headers, userid="li.wei", name="李伟")


def make_codes(client, headers, rep_id: int):
    return client.post(f"/api/v1/reps/{rep_id}/codes", headers=headers)


def decode(png: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_codes_are_made_once_with_the_rep_scene(client, live, auth_headers, sandbox, rep):
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 201, r.json
    codes = r.json
    scene = f"rep:{rep['id']}"
    (qr,) = sandbox.sent(OA_QR)
    assert qr["body"] == {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
    (way,) = sandbox.sent(WAY)
    assert {k: way["body"][k] for k in ("type", "scene", "state", "user")} == {
        "type": 1, "scene": 2, "state": scene, "user": ["li.wei"],
    }  # fmt: skip
    assert codes["complete"] and codes["oa"]["scene"] == scene and codes["oa"]["url"] == qr["answer"]["url"]
    assert codes["oa"]["ticket"] == qr["answer"]["ticket"]
    assert codes["wecom"]["config_id"] == way["answer"]["config_id"] and codes["wecom"]["state"] == scene
    assert codes["wecom"]["qr_code"] == way["answer"]["qr_code"] and codes["wecom"]["users"] == ["li.wei"]
    again = make_codes(client, auth_headers, rep["id"])
    assert again.status_code == 200 and again.json == codes
    assert sandbox.calls(OA_QR) == 1 and sandbox.calls(WAY) == 1
    assert client.get(f"/api/v1/reps/{rep['id']}/codes", headers=auth_headers).json == codes


def test_no_codes_for_an_unknown_inactive_or_unconfirmed_rep(client, live, auth_headers, sandbox, rep):
    assert make_codes(client, auth_headers, 99).status_code == 404
    client.patch(f"/api/v1/reps/{rep['id']}", json={"active": False}, headers=auth_headers)
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 409 and "inactive: activate it" in r.json["message"]
    pending = add(client, auth_headers, userid="zhao.lei", confirmed=False)
    r = make_codes(client, auth_headers, pending["id"])
    assert r.status_code == 409 and "unconfirmed: confirm it" in r.json["message"]
    assert sandbox.sent() == []


def test_a_userid_wecom_does_not_know_is_a_422_and_the_oa_half_is_kept(client, live, auth_headers, sandbox, rep):
    sandbox.set_wecom_members("someone.else")
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 422, r.json
    assert r.json["detail"]["errcode"] == 60111 and r.json["detail"]["api"] == "externalcontact/add_contact_way"
    assert "60111" in r.json["message"] and "'li.wei'" in r.json["message"]
    codes = client.get(f"/api/v1/reps/{rep['id']}/codes", headers=auth_headers).json
    assert codes["oa"]["scene"] == f"rep:{rep['id']}" and codes["wecom"] is None and not codes["complete"]
    sandbox.set_wecom_members("li.wei")  # the admin adds the member in WeCom, then asks again
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 201 and r.json["complete"] and r.json["oa"] == codes["oa"]
    assert sandbox.calls(OA_QR) == 1  # no second permanent code spent on the same rep


def test_wecom_busy_is_a_502_naming_the_code(client, live, auth_headers, sandbox, rep):
    sandbox.fail_next(WAY, errcode=-1)
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 502 and r.json["detail"] == {
        "api": "externalcontact/add_contact_way", "errcode": -1, "errmsg": r.json["detail"]["errmsg"],
        "retryable": True,
    }  # fmt: skip
    assert make_codes(client, auth_headers, rep["id"]).status_code == 201


def test_wechat_refusing_the_oa_code_makes_nothing(client, live, auth_headers, sandbox, rep):
    sandbox.fail_next(OA_QR, errcode=45009)
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 502 and r.json["detail"]["errcode"] == 45009
    assert sandbox.calls(WAY) == 0
    assert client.get(f"/api/v1/reps/{rep['id']}/codes", headers=auth_headers).json["code_id"] is None


def test_no_answer_in_time_is_a_502_that_says_the_way_may_exist(app, client, live, auth_headers, sandbox, rep):
    svc = app.extensions["welead"]
    svc.settings = svc.settings.replace(http_timeout=1)
    sandbox.set_delay(1.5, WAY)
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 502 and "may exist there" in r.json["message"]
    assert r.json["detail"] == {"api": "externalcontact/add_contact_way", "errcode": None, "retryable": False}


def test_a_second_request_while_codes_are_being_made_is_a_409(app, client, live, auth_headers, sandbox, rep):
    app.extensions["welead"].redis_slow.set(f"welead:rep-codes:{rep['id']}", "someone", ex=60)
    r = make_codes(client, auth_headers, rep["id"])
    assert r.status_code == 409 and "being made by another request" in r.json["message"]
    assert sandbox.sent() == []


def test_who_may_make_and_read_codes(app, client, live, auth_headers, rep):
    other = add(client, auth_headers, userid="wang.fang")
    own = token(app, "rep", str(rep["id"]))
    assert make_codes(client, own, rep["id"]).status_code == 403
    assert make_codes(client, token(app, "marketer"), rep["id"]).status_code == 201
    assert client.get(f"/api/v1/reps/{rep['id']}/codes", headers=own).json["complete"]
    assert client.get(f"/api/v1/reps/{rep['id']}/qrcode.png", headers=own).status_code == 200
    assert client.get(f"/api/v1/reps/{other['id']}/codes", headers=own).status_code == 404
    assert client.get(f"/api/v1/reps/{other['id']}/qrcode.png", headers=own).status_code == 404


# --- the printable code -----------------------------------------------------------------------------------------------


def test_qrcode_png_encodes_the_code_and_prints_the_name(client, live, auth_headers, rep):
    url = f"/api/v1/reps/{rep['id']}/qrcode.png"
    r = client.get(url, headers=auth_headers)
    assert r.status_code == 409 and f"POST /api/v1/reps/{rep['id']}/codes" in r.json["message"]
    codes = make_codes(client, auth_headers, rep["id"]).json
    r = client.get(url, headers=auth_headers)
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert decode(r.data) == [codes["oa"]["url"]]
    assert Image.open(io.BytesIO(r.data)).width == qr_image.SIZE_DEFAULT
    r = client.get(url, query_string={"kind": "wecom", "size": 300}, headers=auth_headers)
    assert decode(r.data) == [codes["wecom"]["qr_code"]] and Image.open(io.BytesIO(r.data)).width == 300


@pytest.mark.parametrize("query", [{"kind": "sms"}, {"size": "50"}, {"size": "3000"}, {"size": "big"}])
def test_qrcode_png_bad_arguments_are_400(client, auth_headers, rep, query):
    r = client.get(f"/api/v1/reps/{rep['id']}/qrcode.png", query_string=query, headers=auth_headers)
    assert r.status_code == 400


def test_qrcode_png_unknown_rep_is_404(client, auth_headers):
    assert client.get("/api/v1/reps/5/qrcode.png", headers=auth_headers).status_code == 404


def caption(png: bytes, code_height: int) -> Image.Image:
    image = Image.open(io.BytesIO(png)).convert("L")
    return image.crop((0, code_height, image.width, image.height))


def test_chinese_names_are_drawn_with_real_glyphs():
    """Pillow's own font would draw every CJK character as the same box: distinct characters must differ in ink."""
    assert qr_image.font(20).getname() == ("Noto Sans CJK SC", "Regular")
    code_height = Image.open(io.BytesIO(qr_image.render("x", "", 400))).height
    li, wei, blank = (caption(qr_image.render("x", name, 400), code_height) for name in ("李", "伟", " "))
    ink = [sum(band.histogram()[:128]) for band in (li, wei, blank)]
    assert ink[0] > 50 and ink[1] > 50 and ink[2] == 0
    assert li.tobytes() != wei.tobytes()


def test_long_names_shrink_to_fit_and_still_scan():
    name = "欧阳娜娜 · 华东区域大客户销售经理 (Shanghai)"
    png = qr_image.render("http://weixin.qq.com/q/abc", name, 200)
    assert decode(png) == ["http://weixin.qq.com/q/abc"]
    band = caption(png, Image.open(io.BytesIO(qr_image.render("http://weixin.qq.com/q/abc", "", 200))).height)
    columns = [x for x in range(band.width) if any(band.getpixel((x, y)) < 128 for y in range(band.height))]
    assert columns and columns[0] > 0 and columns[-1] < band.width - 1  # inside the image, not cut at the edges


def test_render_refuses_what_it_cannot_draw():
    with pytest.raises(qr_image.ImageError):
        qr_image.render("x", "n", 100)
    with pytest.raises(qr_image.ImageError):
        qr_image.render("", "n", 300)
    with pytest.raises(qr_image.ImageError):
        qr_image.render("x" * 3000, "n", 200)  # more than a QR code holds


# --- scene and state limits (shared with team codes) ------------------------------------------------------------------


def test_scene_and_state_limits():
    assert check_scene("s" * 64) == "s" * 64 and check_state("s" * 30) == "s" * 30
    for bad in ("", "s" * 65, None, 7):
        with pytest.raises(CodeRuleError, match="1 to 64 characters"):
            check_scene(bad)
    with pytest.raises(CodeRuleError, match="1 to 30 characters"):
        check_state("s" * 31)
    with pytest.raises(CodeRuleError, match="state"):
        check_code("team:" + "9" * 26)  # a fine scene, too long a state


# --- the CLI ----------------------------------------------------------------------------------------------------------


def test_cli_codes_and_qrcode(runner, live, sandbox, rep, tmp_path):
    out = tmp_path / "rep.png"
    r = runner.invoke(args=["rep", "qrcode", str(rep["id"]), "--out", str(out)])
    assert r.exit_code == 1 and f"flask rep codes {rep['id']}" in r.output and not out.exists()
    r = runner.invoke(args=["rep", "codes", str(rep["id"])])
    assert r.exit_code == 0 and "codes made" in r.output, r.output
    assert "codes existed already" in runner.invoke(args=["rep", "codes", str(rep["id"])]).output
    r = runner.invoke(args=["rep", "qrcode", str(rep["id"]), "--out", str(out)])
    assert r.exit_code == 0 and out.exists(), r.output
    (qr,) = sandbox.sent(OA_QR)
    assert decode(out.read_bytes()) == [qr["answer"]["url"]]
    r = runner.invoke(args=["rep", "qrcode", str(rep["id"]), "--out", str(out), "--kind", "wecom", "--size", "400"])
    assert r.exit_code == 0 and decode(out.read_bytes()) == [sandbox.sent(WAY)[0]["answer"]["qr_code"]]
    r = runner.invoke(args=["rep", "qrcode", str(rep["id"]), "--out", str(out), "--size", "10"])
    assert r.exit_code == 1 and "size must be an integer from 200 to 2000" in r.output


def test_cli_codes_names_the_wecom_error(runner, live, sandbox, rep):
    sandbox.fail_next(WAY, errcode=60111)
    r = runner.invoke(args=["rep", "codes", str(rep["id"])])
    assert r.exit_code == 1 and "60111" in r.output and "not a member of the corp" in r.output

"""The message library: validation with clear errors, rendering by WeChat's rules, the list and preview API."""

from pathlib import Path

import pytest
import yaml

from foundation.config import ROOT
from scrm.message_templates import TemplateError, library, load_file, parse, render
from tests.messaging_kit import add_followers, with_messaging

GOOD = {"kind": "service", "template_id": "TPL_1", "fields": {"thing1": "{{ data.name }}", "time2": "10:00"}}


def problem(document) -> str:
    with pytest.raises(TemplateError) as exc:
        parse("t", document)
    return str(exc.value)


def test_shipped_library_is_valid():
    lib = library(ROOT / "templates" / "messages")
    assert lib.errors == {} and len(lib.entries) >= 6
    assert {t.kind for t in lib.entries.values()} == {"service", "marketing"}
    assert all("template" not in t.channels for t in lib.entries.values() if t.kind == "marketing")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tempalte_id": "x"}, "tempalte_id: unknown key"),
        ({"template_id": None}, "template_id is missing"),
        ({"fields": {"first": "hi"}}, "first/remark (May 2023)"),
        ({"fields": {"remark": "bye"}}, "first/remark"),
        ({"fields": {"colour1": "x"}}, "unknown field 'colour1'"),
        (
            {"fields": {"thing1": "这是一条超过二十个字符限制的服务通知内容而且还更长"}},
            "WeChat allows 20 for thing fields",
        ),
        ({"fields": {"phrase1": "太长了的短语"}}, "allows 5 for phrase"),
        ({"fields": {"number1": "12a"}}, "not a valid number"),
        ({"fields": {"thing1": "{{ folower.openid }}"}}, "unknown name(s) folower"),
        ({"fields": {"thing1": "{{ data.x "}}, "Jinja syntax error"),
        ({"kind": "advert"}, "kind: Input should be 'service' or 'marketing'"),
        ({"kind": "marketing"}, "template messages are for service notices only"),
        ({"fields": {}}, "nothing to send"),
    ],
)
def test_invalid_entries_say_what_is_wrong(change, message):
    assert message in problem({**GOOD, **change})


def test_rendered_values_are_checked_like_wechat():
    tpl = parse("t", GOOD)
    ctx = {"follower": {}, "event": {}, "now": None}
    assert render(tpl, "template", {**ctx, "data": {"name": "Expo"}})["data"]["thing1"] == {"value": "Expo"}
    with pytest.raises(TemplateError, match="thing1' is 21 characters"):
        render(tpl, "template", {**ctx, "data": {"name": "x" * 21}})
    with pytest.raises(TemplateError, match=r"fields\.thing1: 'dict object' has no attribute 'name'"):
        render(tpl, "template", {**ctx, "data": {}})
    with pytest.raises(TemplateError, match="cannot go by 'custom'"):
        render(tpl, "custom", {**ctx, "data": {"name": "x"}})


def test_templates_are_sandboxed():
    tpl = parse("t", {**GOOD, "fields": {"thing1": "{{ data.__class__.__mro__ }}"}})
    with pytest.raises(TemplateError):
        render(tpl, "template", {"follower": {}, "event": {}, "now": None, "data": {}})


def test_a_broken_file_does_not_hide_the_others(tmp_path: Path):
    (tmp_path / "good.yml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "bad.yml").write_text("kind: service\nfields: {first: x}\ntemplate_id: T\n")
    (tmp_path / "worse.yml").write_text("kind: [unclosed\n")
    lib = library(tmp_path)
    assert list(lib.entries) == ["good"] and set(lib.errors) == {"bad", "worse"}
    with pytest.raises(TemplateError, match="'bad' is invalid"):
        lib.get("bad")
    assert load_file(tmp_path / "good.yml").template_id == "TPL_1"


@pytest.fixture
def settings(settings, tmp_path):
    (tmp_path / "notice.yml").write_text(
        yaml.safe_dump(
            {
                **GOOD,
                "url": "https://example.com/u/{{ follower.openid }}",
                "fields": {
                    "thing1": "{{ data.name }}",
                    "character_string2": "{{ follower.openid }}",
                    "thing3": "{{ event.event_key | default('-') }}",
                },
            }
        )
    )
    (tmp_path / "broken.yml").write_text("kind: service\ntemplate_id: T\nfields: {remark: x}\n")
    return with_messaging(settings, templates_dir=str(tmp_path))


def test_list_and_get(client, auth_headers):
    r = client.get("/api/v1/templates", headers=auth_headers)
    assert r.status_code == 200 and [t["name"] for t in r.json["items"]] == ["notice"]
    assert "first/remark" in r.json["errors"]["broken"]
    assert client.get("/api/v1/templates/notice", headers=auth_headers).json["channels"] == ["template"]
    assert client.get("/api/v1/templates/broken", headers=auth_headers).status_code == 422
    assert client.get("/api/v1/templates/none", headers=auth_headers).status_code == 404


def test_preview_is_the_exact_request(app, client, auth_headers):
    add_followers(app, 1)
    body = {"openid": "o-000000", "data": {"name": "Expo"}, "event": {"event_key": "booth:1"}}
    r = client.post("/api/v1/templates/notice/preview", json=body, headers=auth_headers)
    assert r.status_code == 200
    assert r.json == {
        "touser": "o-000000",
        "template_id": "TPL_1",
        "url": "https://example.com/u/o-000000",
        "data": {
            "thing1": {"value": "Expo"},
            "character_string2": {"value": "o-000000"},
            "thing3": {"value": "booth:1"},
        },
    }
    r = client.post("/api/v1/templates/notice/preview", json={"openid": "o-000000"}, headers=auth_headers)
    assert r.status_code == 422 and "fields.thing1" in r.json["message"]
    assert (
        client.post("/api/v1/templates/notice/preview", json={"openid": "x"}, headers=auth_headers).status_code == 404
    )


def test_marketers_only(app, client):
    from welead.auth import issue

    with app.extensions["welead"].db.transaction() as s:
        staff = issue(s, "booth-staff", "staff", subject="expo")
        marketer = issue(s, "m", "marketer")
    assert client.get("/api/v1/templates", headers={"Authorization": f"Bearer {staff}"}).status_code == 403
    assert client.get("/api/v1/templates", headers={"Authorization": f"Bearer {marketer}"}).status_code == 200

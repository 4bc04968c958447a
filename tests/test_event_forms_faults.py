"""Lead forms when Redis is down: the booth reply still answers (with the H5 link, no chat offer it could not keep),
the H5 form still records, and the applier still writes the lead (it polls the database)."""

from __future__ import annotations

import re

import pytest

from scrm import applier, event_forms
from tests.event_forms_kit import LINK, content, leads, make_event, say, scan, svc
from tests.helpers import running_url


@pytest.fixture
def redis_url(killable_redis):
    return running_url(killable_redis)


@pytest.fixture
def settings(settings):
    return settings.replace(public_url="https://welead.example")


def test_redis_down_offers_the_h5_form_and_it_still_records(app, client, killable_redis):
    make_event(app)
    killable_redis.kill()
    reply = content(scan(client, "o-down", "booth:expo:A1", apply=False))
    assert "回复 1" not in reply and LINK.search(reply)
    token = LINK.search(reply).group(2)
    assert content(say(client, "o-down", "1", apply=False)) != event_forms.PROMPTS["name"]  # no state to keep
    html = client.get(f"/forms/lead?t={token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    data = {"t": token, "csrf": csrf, "n": "x1", "name": "张三", "company": "Acme", "mobile": "13800138000"}
    assert client.post("/forms/lead", data=data).status_code == 303
    applier.drain(svc(app).db)
    (lead,) = leads(app)
    assert (lead["via"], lead["mobile"]) == ("h5", "13800138000")

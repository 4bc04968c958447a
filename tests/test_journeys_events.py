"""Issue 10 item 6: registered attendees get the event reminder the day before (10:00) and the morning of the event
(08:00, Asia/Shanghai), from the demo playbook's `event_reminders` journey, through the messaging pipeline."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta

import pytest
import yaml
from sqlalchemy import select

from foundation.clock import utcnow
from foundation.config import ROOT
from scrm.delivery_models import Delivery
from scrm.event_models import Event
from scrm.models import Outbox
from tasks.worker import run_worker
from tests import journeys_kit as kit
from tests.helpers import post
from tests.messaging_kit import with_messaging

_clock = itertools.count(int(time.time()) - 40_000)


@pytest.fixture
def settings(settings):
    return with_messaging(settings)


def demo_with_registration() -> str:
    """The demo playbook, plus a menu click that registers (in production a form or the events API tags)."""
    book = yaml.safe_load((ROOT / "playbooks" / "demo.yml").read_text())
    book["rules"].append({"name": "register", "when": {"click": "REG:{event}"}, "do": [{"tag": "registered:{event}"}]})
    return yaml.safe_dump(book, allow_unicode=True)


def make_event(app, slug: str, starts: datetime) -> None:
    with kit.db(app).transaction() as session:
        session.add(Event(slug=slug, name="WeLead Expo", starts_at=starts, ends_at=starts + timedelta(hours=8)))


def register(client, app, openid: str, slug: str) -> None:
    assert post(client, "subscribe", openid=openid, create_time=next(_clock)).status_code == 200
    assert post(client, "click", openid=openid, key=f"REG:{slug}", create_time=next(_clock)).status_code == 200
    run_worker(app, burst=True)  # the applier tags, the rule starts the journey (journey.start)


def reminders(app, openid: str) -> list[dict]:
    with kit.db(app).sessions() as session:
        rows = session.scalars(select(Outbox).where(Outbox.task == "template.send").order_by(Outbox.id))
        return [r.args for r in rows if r.args["openid"] == openid and r.args["template"] == "event_reminder"]


def local(day: datetime, hh: int, mm: int = 0) -> datetime:
    """`day`'s date at hh:mm Asia/Shanghai, in naive UTC."""
    return datetime(day.year, day.month, day.day, hh, mm) - timedelta(hours=8)


def test_the_day_before_and_the_morning_of(app, client, live):
    kit.load(app, demo_with_registration())
    starts = local(utcnow() + timedelta(days=3), 9, 30)  # 09:30 local, three days from now
    make_event(app, "expo", starts)
    register(client, app, "o-att", "expo")
    run = kit.run_of(app, "o-att", "event_reminders")
    assert run.context == {"event": "expo"} and run.state == "running"
    day_before = local(starts + timedelta(hours=8) - timedelta(days=1), 10)
    assert run.due_at == day_before
    kit.step(app, day_before - timedelta(minutes=1))
    assert reminders(app, "o-att") == []
    kit.step(app, day_before)
    (first,) = reminders(app, "o-att")
    assert first["data"] == {"event_name": "WeLead Expo", "starts_at": (starts + timedelta(hours=8)).strftime(
        "%Y-%m-%d %H:%M")}  # fmt: skip
    morning = local(starts + timedelta(hours=8), 8)
    assert kit.run_of(app, "o-att", "event_reminders").due_at == morning
    kit.step(app, morning)
    assert len(reminders(app, "o-att")) == 2 and kit.run_of(app, "o-att", "event_reminders").state == "finished"
    run_worker(app, burst=True)  # the messaging pipeline takes them: deliveries, guards, the sandbox
    with kit.db(app).sessions() as session:
        sent = session.scalars(
            select(Delivery).where(Delivery.openid == "o-att", Delivery.template == "event_reminder")
        )
        assert len(list(sent)) == 2


def test_a_late_registration_skips_the_reminders_whose_time_has_passed(app, client, live):
    kit.load(app, demo_with_registration())
    starts = utcnow() + timedelta(hours=2)  # the day-before 10:00 has passed; the morning's 08:00 may have too
    make_event(app, "late", starts)
    register(client, app, "o-late", "late")
    morning = local(starts + timedelta(hours=8), 8)
    kit.step(app, max(morning, utcnow()))
    done = kit.executed(app, "o-late")
    assert done[:2] == [("0", "missed"), ("1", "skipped")]
    if morning < utcnow() - timedelta(seconds=30):
        assert done[2:] == [("2", "missed"), ("3", "skipped")] and reminders(app, "o-late") == []
    else:
        assert done[2:] == [("2", "done"), ("3", "done")] and len(reminders(app, "o-late")) == 1
    assert kit.run_of(app, "o-late", "event_reminders").state == "finished"

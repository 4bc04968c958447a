"""The playbook grammar: what validates, and the error each bad input gets (path, rule, reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrm.playbook import PlaybookError, parse
from scrm.playbook.grammar import Playbook

ROOT = Path(__file__).resolve().parent.parent


def errors(text: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        parse(text)
    return caught.value.errors


def rule(when: str, do: str, name: str = "r") -> str:
    return f"rules:\n  - name: {name}\n    when: {when}\n    do: {do}\n"


def test_demo_playbook_is_valid():
    book = parse((ROOT / "playbooks" / "demo.yml").read_text())
    assert book.name == "demo" and len(book.rules) >= 15 and "nurture" in book.journeys
    assert book.primary_model == "engagement"
    assert [s.name for s in book.stages.order] == ["new", "engaged", "mql", "sql", "customer"]


def test_defaults():
    book = parse("rules: []")
    assert list(book.models) == ["engagement"] and book.models["engagement"].half_life_days == 30
    assert [s.name for s in book.stages.order][-1] == "customer" and book.stages.demote is False


def test_spec_round_trips():
    book = parse((ROOT / "playbooks" / "demo.yml").read_text())
    dumped = book.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert Playbook.model_validate(dumped) == book


def test_shorthands_normalise():
    book = parse(
        "rules:\n"
        "  - {name: a, when: subscribe, do: [{tag: x}, {reply: hi}, {send_template: t}, {notify_owner: true}]}\n"
        "  - {name: b, when: {click: [K1, K2]}, do: [{score: 3, cap: once}, {score: 1, cap: daily}]}\n"
        "  - {name: c, when: {text: price}, do: [{untag: [x, y]}]}\n"
    )
    a, b, c = book.rules
    assert a.when.kind == "subscribe" and a.when.subscribe.scene is None
    assert a.do[0].tag == ["x"] and a.do[1].reply.text == "hi" and a.do[2].send_template.template == "t"
    assert a.do[3].notify_owner.reason == ""
    assert b.when.click.key == ["K1", "K2"] and b.do[0].cap.once and b.do[1].cap.per_day == 1
    assert c.when.text.keywords == ["price"] and c.do[0].untag == ["x", "y"]


BAD = [
    (rule("{click: X}", "[{tag: x}, {score: ten}]"), "rules[0].do[1].score: expected integer (rule 'r')"),
    (rule("{click: X}", "[{score: 1.5}]"), "rules[0].do[0].score: expected integer"),
    (rule("{clik: X}", "[{tag: x}]"), "rules[0].when: unknown trigger 'clik'"),
    (rule("{click: X}", "[{tagg: x}]"), "rules[0].do[0]: unknown action 'tagg'"),
    (rule("{click: X}", "[{tag: x, colour: red}]"), "rules[0].do[0]: unknown action 'colour'"),
    (rule("{click: {key: X, colour: red}}", "[{tag: x}]"), "rules[0].when.click.colour: unknown field"),
    (rule("{text: {regex: '(oops'}}", "[{tag: x}]"), "rules[0].when.text.regex: bad regex: missing )"),
    (rule("{text: {}}", "[{tag: x}]"), "rules[0].when.text: give keywords or a regex"),
    (rule("{click: X, scan: null}", "[{tag: x}]"), "rules[0].when: expected exactly one trigger, got click, scan"),
    (rule("{click: X}", "[]"), "rules[0].do: at least 1 item(s)"),
    (rule("{click: X}", "[{tag: x, score: 1}]"), "rules[0].do[0]: expected exactly one action, got tag, score"),
    (rule("{click: X}", "[{tag: x, cap: once}]"), "rules[0].do[0]: option 'cap' belongs to score, not tag"),
    (rule("{click: X}", "[{score: 1, cap: weekly}]"), "rules[0].do[0].cap: expected once, daily"),
    (rule("{click: X}", "[{score: 1, model: nope}]"), "rules[0].do[0].model: unknown model 'nope'"),
    (rule("{click: X}", "[{stage: vip}]"), "rules[0].do[0].stage: unknown stage 'vip'"),
    (rule("{click: X}", "[{start_journey: j}]"), "rules[0].do[0].start_journey: unknown journey 'j'"),
    (rule("{click: X}", "[{tag: 'e:{event}'}]"), "rules[0].do[0].tag[0]: unknown placeholder {event}"),
    (rule("{click: X}", "[{tag: 'e:{'}]"), "rules[0].do[0].tag[0]: bad placeholder"),
    (rule("{click: X}", "[{tag: '{key.upper}'}]"), "only plain names are allowed"),
    (rule("{scene: 'booth:{e}:{e}'}", "[{tag: x}]"), "placeholder {e} appears twice"),
    (rule("{scene: 'booth:{'}", "[{tag: x}]"), "bad placeholder in pattern"),
    (rule("{inactive: 7}", "[{reply: hi}]"), "rules[0].do[0].reply: inactive rules run without a message"),
    (rule("{inactive: 0}", "[{tag: x}]"), "rules[0].when.inactive.days"),
    (rule("{stage_changed: {to: won}}", "[{tag: x}]"), "rules[0].when.stage_changed.to: unknown stage 'won'"),
    (rule("{score_crossed: {threshold: 5, model: fit}}", "[{tag: x}]"), "score_crossed.model: unknown model 'fit'"),
    (rule("{score_crossed: high}", "[{tag: x}]"), "rules[0].when.score_crossed.threshold"),
    (rule("{click: X}", "[{tag: x}]", name="'bad name!'"), "rules[0].name: String should match pattern"),
    (
        rule("{click: X}", "[{tag: x}]") + "  - {name: r, when: subscribe, do: [{tag: y}]}\n",
        "rules[1].name: duplicate rule name 'r' (also rules[0])",
    ),
    ("rules:\n  - when: subscribe\n    do: [{tag: x}]\n", "rules[0].name: required"),
    ("rules: [{name: a, when: subscribe, do: [{tag: x}], then: []}]", "rules[0].then: unknown field"),
    ("stages: {order: [{name: a, at: 10}, {name: b, at: 5}]}", "stages.order[1].at: thresholds must not decrease"),
    ("stages: {model: fit}", "stages.model: unknown model 'fit'"),
    ("models: {Engagement: {}}", "models.Engagement.[key]: String should match pattern"),
    ("journeys: {j: {steps: [{wait: 2x}]}}", "journeys.j.steps[0].wait: expected a duration"),
    ("journeys: {j: {steps: [{wait: 1d, do: [{tag: x}]}]}}", "journeys.j.steps[0]: a step either waits or does"),
    ("journeys: {j: {steps: [{do: [{reply: hi}]}]}}", "journeys.j.steps[0].do[0].reply: a journey step cannot reply"),
    ("journeys: {j: {steps: [{do: [{tag: '{scene}'}]}]}}", "journeys.j.steps[0].do[0].tag[0]: unknown placeholder"),
    ("rules: [", "line 1"),
    ("- just a list", "(top): expected a mapping"),
    ("surprise: 1", "surprise: unknown field"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_input_names_path_and_reason(text: str, expected: str):
    found = errors(text)
    assert any(expected in e for e in found), found


def test_every_problem_is_reported_at_once():
    found = errors(rule("{clik: X}", "[{tagg: x}]") + "surprise: 1\n")
    assert len(found) == 3


def test_placeholders_from_patterns_and_regex_groups():
    book = parse(
        rule("{scene: ['booth:{event}:{booth}', 'staff:{event}:{booth}']}", "[{tag: 'e:{event}:{booth}:{scene}'}]")
        + "  - {name: t, when: {text: {regex: '(?P<sku>\\d+)'}}, do: [{tag: 'sku:{sku}:{text}'}]}\n"
    )
    assert len(book.rules) == 2
    # a name bound by only one of several patterns is not safe to use
    assert (
        "unknown placeholder {booth}"
        in errors(rule("{scene: ['booth:{event}:{booth}', 'campaign:{event}']}", "[{tag: '{booth}'}]"))[0]
    )


def test_literal_braces_are_allowed():
    assert parse(rule("{click: X}", "[{reply: 'use {{braces}}'}]")).rules[0].do[0].reply.text == "use {{braces}}"

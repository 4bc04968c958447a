"""What a new marketer trips over in the playbook: error messages, all errors at once, identical loads, stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrm import stages
from scrm.playbook import PlaybookError, parse

DEMO = Path(__file__).resolve().parent.parent / "playbooks" / "demo.yml"


def errors(text: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        parse(text)
    return caught.value.errors


# --- item 8: a misspelled short-form trigger or action is named, not "expected a mapping" -------------------------


def test_misspelled_short_trigger_is_an_unknown_trigger():
    found = errors("rules: [{name: bye, when: unsubscrib, do: [{tag: gone}]}]")
    assert len(found) == 1
    assert found[0].startswith("rules[0].when: unknown trigger 'unsubscrib' (expected one of: subscribe, scan,")
    assert "unsubscribe" in found[0] and found[0].endswith("(rule 'bye')")


def test_misspelled_short_action_is_an_unknown_action():
    found = errors("rules: [{name: r, when: subscribe, do: [tagg]}]")
    assert found == [
        "rules[0].do[0]: unknown action 'tagg' (expected one of: tag, untag, score, stage, assign, reply, "
        "send_template, notify_owner, start_journey, send_poster, start_form) (rule 'r')"
    ]


# --- item 9: shape errors and reference errors of one file together -----------------------------------------------

MIXED = """
models: {engagement: {}, fit: {half_life_days: -1}}
stages: {order: [new, {name: mql, at: 40}, {name: sql, at: 20}]}
rules:
  - {name: a, when: {click: X}, do: [{score: x}]}
  - {name: b, when: {click: Y}, do: [{score: 1, model: fitt}, {stage: hot}, {start_journey: nope}, {start_journey: j}]}
  - {name: c, when: unsubscrib, do: [{tag: x}]}
  - {name: d, when: {stage_changed: warm}, if: {stage_below: cold}, do: [{tag: "{nothing}"}]}
journeys:
  j: {steps: [{wait: 1d}, {do: [{stage: nowhere}]}]}
  k: {steps: [{wait: bad}]}
"""


def test_reference_errors_are_reported_with_shape_errors():
    found = errors(MIXED)
    expected = [
        "models.fit.half_life_days: Input should be greater than 0",
        "rules[0].do[0].score: expected integer (rule 'a')",
        "rules[2].when: unknown trigger 'unsubscrib'",
        "journeys.k.steps[0].wait: expected a duration",
        "stages.order[2].at: thresholds must not decrease along the order (20.0 < 40.0)",
        "rules[1].do[0].model: unknown model 'fitt' (models: engagement, fit) (rule 'b')",
        "rules[1].do[1].stage: unknown stage 'hot' (stages: new, mql, sql) (rule 'b')",
        "rules[1].do[2].start_journey: unknown journey 'nope' (rule 'b')",
        "rules[3].when.stage_changed.to: unknown stage 'warm' (rule 'd')",
        "rules[3].if.stage_below: unknown stage 'cold' (rule 'd')",
        "rules[3].do[0].tag[0]: unknown placeholder {nothing}",
        "journeys.j.steps[1].do[0].stage: unknown stage 'nowhere' (stages: new, mql, sql)",
    ]
    for text in expected:
        assert any(e.startswith(text) for e in found), (text, found)
    assert len(found) == len(expected), found
    assert not any("start_journey: unknown journey 'j'" in e for e in found)  # j exists, though malformed elsewhere


def test_a_malformed_section_does_not_invent_reference_errors():
    """Names that cannot be known (models is not a mapping, stages unreadable) are not checked against."""
    found = errors("models: [a]\nstages: {order: 3}\nrules: [{name: r, when: subscribe, do: [{score: 1, model: a},"
                   " {stage: x}]}]")  # fmt: skip
    assert found == ["models: expected a mapping", "stages.order: expected a list"]


# --- item 10: loading the active text again keeps its version -----------------------------------------------------


def put(client, headers, text: str):
    return client.put("/api/v1/playbook", data=text, headers={**headers, "Content-Type": "application/yaml"})


def test_api_identical_load_is_unchanged(client, auth_headers):
    text = DEMO.read_text()
    first = put(client, auth_headers, text)
    assert first.status_code == 201 and first.json["version"] == 1 and first.json["unchanged"] is False
    again = put(client, auth_headers, text)
    assert again.status_code == 200, again.json
    assert again.json["version"] == 1 and again.json["unchanged"] is True and again.json["active"] is True
    assert [v["version"] for v in client.get("/api/v1/playbook/versions", headers=auth_headers).json["items"]] == [1]
    edited = put(client, auth_headers, text + "\n# a comment is a change of the stored text\n")
    assert edited.status_code == 201 and edited.json["version"] == 2
    back = put(client, auth_headers, text)  # the old text again is a new version: only the active one is compared
    assert back.status_code == 201 and back.json["version"] == 3


def test_cli_identical_load_is_unchanged(runner, tmp_path):
    r = runner.invoke(args=["playbook", "load", str(DEMO)])
    assert r.exit_code == 0 and "as version 1" in r.output
    r = runner.invoke(args=["playbook", "load", str(DEMO)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "unchanged: playbook 'demo' is already the active version 1; nothing loaded"
    lines = runner.invoke(args=["playbook", "versions"]).output.splitlines()
    assert [line.split()[0] for line in lines] == ["1"]


def test_invalid_text_is_refused_even_when_nothing_is_loaded(runner, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("rules: [{name: a, when: clik, do: [{tag: x}]}]")
    r = runner.invoke(args=["playbook", "load", str(bad)])
    assert r.exit_code == 1 and "unknown trigger 'clik'" in r.output


# --- item 11: what negative points and the re-arm margin do (documented in docs/playbook.md) ----------------------

ORDER = [stages.Stage("new", 0), stages.Stage("engaged", 10), stages.Stage("mql", 40), stages.Stage("customer", None)]


def test_negative_points_never_move_a_stage_back_without_demote():
    assert stages.target(ORDER, "mql", -100, margin=5, demote=False) == "mql"


def test_with_demote_a_score_more_than_margin_below_moves_back_at_once():
    assert stages.target(ORDER, "mql", 35, margin=5, demote=True) == "mql"  # exactly margin below: stays
    assert stages.target(ORDER, "mql", 34.9, margin=5, demote=True) == "engaged"
    assert stages.target(ORDER, "mql", 4, margin=5, demote=True) == "new"  # the highest stage still held
    assert stages.target(ORDER, "customer", -100, margin=5, demote=True) == "customer"  # no threshold: kept


def test_a_score_exactly_margin_below_does_not_rearm():
    thresholds = {40.0: 10.0}
    assert stages.crossings(30, 45, thresholds, fired={40.0}) == ([], [])  # 30 = 40 - 10: still disarmed
    assert stages.crossings(29.9, 45, thresholds, fired={40.0}) == ([40.0], [40.0])  # below: re-arms and fires
    assert stages.crossings(45, 30, thresholds, fired={40.0}) == ([], [])  # a drop to exactly 30 does not either
    assert stages.crossings(45, 29, thresholds, fired={40.0}) == ([], [40.0])  # a drop below re-arms

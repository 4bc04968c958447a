"""`flask playbook check/load/show/versions/load-demo-if-empty/tick`."""

from __future__ import annotations

from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "playbooks" / "demo.yml"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "book.yml"
    path.write_text(text)
    return str(path)


def test_check(runner, tmp_path):
    r = runner.invoke(args=["playbook", "check", str(DEMO)])
    assert r.exit_code == 0, r.output
    assert (
        r.output.startswith("ok: 'demo': 19 rules, 3 journeys") and "new → engaged → mql → sql → customer" in r.output
    )
    r = runner.invoke(
        args=["playbook", "check", write(tmp_path, "rules: [{name: a, when: {click: X}, do: [{score: x}]}]")]
    )
    assert r.exit_code == 1
    assert "rules[0].do[0].score: expected integer (rule 'a')" in r.output and "nothing loaded" in r.output


def test_load_versions_and_show(runner, tmp_path):
    assert runner.invoke(args=["playbook", "show"]).exit_code == 1
    r = runner.invoke(args=["playbook", "load", str(DEMO)])
    assert r.exit_code == 0 and "as version 1" in r.output
    bad = write(tmp_path, "rules: [{name: a, when: {clik: X}, do: [{tag: x}]}]")
    r = runner.invoke(args=["playbook", "load", bad])
    assert r.exit_code == 1 and "rules[0].when: unknown trigger 'clik'" in r.output
    good = write(tmp_path, "name: second\nrules: []\n")
    assert "as version 2" in runner.invoke(args=["playbook", "load", good]).output
    r = runner.invoke(args=["playbook", "show", "--no-source"])
    assert r.output.startswith("version 2 'second'")
    r = runner.invoke(args=["playbook", "show", "--version", "1"])
    assert "version 1 'demo'" in r.output and "name: demo" in r.output
    lines = runner.invoke(args=["playbook", "versions"]).output.splitlines()
    assert [line.split()[0] for line in lines] == ["2", "1"]


def test_load_demo_if_empty(runner):
    r = runner.invoke(args=["playbook", "load-demo-if-empty"])
    assert r.exit_code == 0 and "'demo' as version 1" in r.output
    r = runner.invoke(args=["playbook", "load-demo-if-empty"])
    assert r.exit_code == 0 and "demo not loaded" in r.output


def test_tick(runner):
    runner.invoke(args=["playbook", "load", str(DEMO)])
    r = runner.invoke(args=["playbook", "tick"])
    assert r.exit_code == 0, r.output
    assert '"inactive": 0' in r.output

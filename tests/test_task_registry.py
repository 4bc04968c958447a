"""Task registration is automatic (a new module under tasks/ is found), and a name with no job fails loudly."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tasks
from tasks.registry import TASKS, load_all

ROOT = Path(__file__).resolve().parent.parent


def test_a_new_task_module_registers_without_being_listed(tmp_path, monkeypatch):
    (tmp_path / "zz_probe_tasks.py").write_text(
        "from tasks.registry import task\n\n@task('probe.ping')\ndef ping() -> str:\n    return 'pong'\n"
    )
    monkeypatch.setattr(tasks, "__path__", [*tasks.__path__, str(tmp_path)])
    try:
        load_all()
        assert TASKS["probe.ping"]() == "pong"
    finally:
        TASKS.pop("probe.ping", None)
        sys.modules.pop("tasks.zz_probe_tasks", None)


def _constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                out[target.id] = node.value.value
    return out


def _task_arg(call: ast.Call) -> ast.expr | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "enqueue" and call.args:
        return call.args[0]
    if isinstance(func, ast.Attribute) and func.attr == "add" and ast.unparse(func.value) == "outbox":
        return call.args[1] if len(call.args) > 1 else None
    return None


def written_task_names() -> set[str]:
    """Every task name the domain and handlers write into outbox rows (literal or module constant)."""
    names = set()
    for path in [*ROOT.glob("scrm/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        tree = ast.parse(path.read_text())
        consts = _constants(tree)
        for node in ast.walk(tree):
            arg = _task_arg(node) if isinstance(node, ast.Call) else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in consts:
                names.add(consts[arg.id])
    return names


def test_every_task_name_written_to_the_outbox_has_a_job():
    load_all()
    written = written_task_names()
    assert {"template.send", "rep.notify", "journey.start", "profile.fetch"} <= written, written
    assert sorted(written - set(TASKS)) == []


def test_a_row_whose_task_has_no_job_is_closed_with_the_reason(app):
    from scrm import outbox
    from scrm.models import Outbox
    from tasks.outbox import run

    svc = app.extensions["welead"]
    with app.app_context():
        with svc.db.transaction() as session:
            oid = outbox.add(session, "nobody.registered", {})
        assert run(oid) == "unknown task 'nobody.registered'"
        with svc.db.sessions() as session:
            row = session.get(Outbox, oid)
            assert row.done_at is not None and row.last_error == "unknown task 'nobody.registered'"

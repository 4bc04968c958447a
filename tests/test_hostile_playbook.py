"""A careless (or hostile) marketer's playbook cannot stall callbacks: regexes and patterns match in linear time,
alias bombs and deep nesting are refused before anything is built, non-finite numbers are refused, and an
oversized upload is a 413 whatever the transfer encoding (issue 14: 1, 2, 3, 6)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from foundation.clock import utcnow
from foundation.config import ROOT
from scrm.models import Interaction
from scrm.playbook import PlaybookError, parse, store
from scrm.playbook.models import PlaybookVersion
from tests.helpers import drain, post, serve

YAML = {"Content-Type": "application/yaml"}
BOOK = """
name: hostile
rules:
  - name: all-a
    when: {text: {regex: '(a+)+$'}}
    do: [{reply: "only a's"}]
  - name: starry
    when: {scan: "*a*a*a*a*a*a*a*a*a*a*a*a*a*a!"}
    do: [{tag: starry}]
"""


def put(client, headers, text: str):
    return client.put("/api/v1/playbook", data=text, headers={**headers, **YAML})


def active_version(client, headers):
    r = client.get("/api/v1/playbook", headers=headers)
    return r.json["version"] if r.status_code == 200 else None


# --- 1. linear-time matching ------------------------------------------------------------------------------------

# Run where a stall cannot take the test run with it: the request path's matcher (Compiled.matches, what decide
# uses) on the follower text of the issue, and a pattern with many `*` on a long scene.
MATCH = """
import json, sys
from scrm.playbook import parse
from scrm.playbook.compiled import Compiled, Signal
book = Compiled(parse(sys.stdin.read()), "x")
out = {
    "evil": [r.name for r, _ in book.matches(Signal("text", {"text": "a" * 34 + "!"}))],
    "good": [r.name for r, _ in book.matches(Signal("text", {"text": "aaaa"}))],
    "stars": [r.name for r, _ in book.matches(Signal("scan", {"scene": "a" * 3000}))],
}
print(json.dumps(out))
"""


def test_backtracking_regex_and_star_patterns_answer_promptly():
    run = subprocess.run([sys.executable, "-c", MATCH], input=BOOK, capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"evil": [], "good": ["all-a"], "stars": []}


def test_the_rules_still_answer_through_a_callback(app, client, auth_headers):
    assert put(client, auth_headers, BOOK).status_code == 201  # RE2 compiles (a+)+$ (it only refuses backtracking)
    r = post(client, "text", openid="o-evil", content="a" * 12 + "!")  # the evil text itself: in the subprocess
    assert r.status_code == 200 and r.data == b"success"  # no rule matched: nothing to say
    r = post(client, "text", openid="o-evil", content="aaaa")
    assert b"only a's" in r.data
    with app.extensions["welead"].db.sessions() as s:
        assert [i.apply_error for i in s.scalars(select(Interaction))] == [None, None]


@pytest.mark.parametrize(
    ("regex", "why"),
    [(r"(a)\1", "invalid escape sequence"), ("(?=price)", "invalid perl operator"), ("(?<!x)y", "invalid")],
    ids=["backreference", "lookahead", "lookbehind"],
)
def test_regex_needing_backtracking_is_refused_at_load_naming_the_rule(client, auth_headers, regex, why):
    assert put(client, auth_headers, BOOK).status_code == 201
    text = f"rules:\n  - name: clever\n    when: {{text: {{regex: '{regex}'}}}}\n    do: [{{tag: x}}]\n"
    r = put(client, auth_headers, text)
    assert r.status_code == 422
    (error,) = r.json["detail"]["errors"]
    assert error.startswith("rules[0].when.text.regex: bad regex: ") and why in error
    assert error.endswith("(rule 'clever')")
    assert active_version(client, auth_headers) == 1


# --- 2. YAML bounds ---------------------------------------------------------------------------------------------


def alias_bomb(n: int = 220) -> str:
    """The issue's 220 rules x 220 actions x 220 tags, in a few KB of aliases."""
    tags = "t: &t [" + ", ".join(["x"] * n) + "]"
    actions = "d: &d [" + ", ".join(["{tag: *t}"] * n) + "]"
    rules = "rules: [" + ", ".join(["{name: r, when: any, do: *d}"] * n) + "]"
    return "\n".join([tags, actions, rules]) + "\n"


def nested_aliases(levels: int = 6, width: int = 10) -> str:
    """Few aliases (60), a million nodes."""
    lines = ["l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (alias_bomb(), "more than 100 aliases"),
        (nested_aliases(), "aliases expand to more than 100000 nodes"),
        ("a: &a [*a]\n", "an alias refers to a node that contains it"),
        ("rules: " + "[" * 2000 + "]" * 2000 + "\n", "nested deeper than 32 levels"),
        ('name: "\\ud800"\n', "lone surrogate"),
        ("rules: [{name: r, when: any, do: [{score: " + "9" * 5000 + "}]}]\n", "not valid YAML"),
    ],
    ids=["alias-bomb", "few-aliases-many-nodes", "cycle", "deep", "surrogate", "huge-integer"],
)
def test_hostile_yaml_is_refused_and_the_active_playbook_stays(client, auth_headers, text, problem):
    assert put(client, auth_headers, BOOK).status_code == 201
    r = put(client, auth_headers, text)
    assert r.status_code == 422, r.json
    assert any(problem in e for e in r.json["detail"]["errors"]), r.json
    assert client.post("/api/v1/playbook/check", data=text, headers={**auth_headers, **YAML}).status_code == 422
    assert active_version(client, auth_headers) == 1


def test_alias_bomb_is_refused_by_the_cli(runner, tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(alias_bomb())
    for command in ("check", "load"):
        result = runner.invoke(args=["playbook", command, str(path)])
        assert result.exit_code == 1 and "more than 100 aliases" in result.output


def test_a_few_aliases_still_work():
    text = "x-do: &common [{tag: seen}]\nrules:\n  - {name: a, when: any, do: *common}\n"
    with pytest.raises(PlaybookError, match="unknown field"):  # `x-do` is not grammar, but the alias was read
        parse(text)
    book = parse("rules:\n  - {name: a, when: any, do: &c [{tag: seen}]}\n  - {name: b, when: subscribe, do: *c}\n")
    assert [r.do[0].tag for r in book.rules] == [["seen"], ["seen"]]


# --- 6. non-finite numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        ("when: {score_crossed: .nan}", "rules[0].when.score_crossed.threshold"),
        ("when: {score_crossed: .inf}", "rules[0].when.score_crossed.threshold"),
        ("when: {score_crossed: -.inf}", "rules[0].when.score_crossed.threshold"),
        ("when: any\n    if: {score: {min: .nan}}", "rules[0].if.score.min"),
    ],
)
def test_non_finite_thresholds_are_refused(client, auth_headers, snippet, path):
    r = put(client, auth_headers, f"rules:\n  - name: t\n    {snippet}\n    do: [{{tag: x}}]\n")
    assert r.status_code == 422
    assert f"{path}: expected a finite number (rule 't')" in r.json["detail"]["errors"]


def test_out_of_range_counts_are_refused(client, auth_headers):
    text = "rules:\n  - {name: q, when: {inactive: 99999999999}, do: [{score: 99999999999999999999}]}\n"
    errors = put(client, auth_headers, text).json["detail"]["errors"]
    assert [e.split(":")[0] for e in errors] == ["rules[0].when.inactive.days", "rules[0].do[0].score"]


def store_unchecked(app, source: str, spec: dict) -> None:
    """A version stored by an older release, which did not refuse what this one does."""
    with app.extensions["welead"].db.transaction() as s:
        s.add(PlaybookVersion(version=2, name="old", checksum=store.checksum(source), source=source, spec=spec,
                              created_at=utcnow(), created_by="old release"))  # fmt: skip


def test_a_stored_version_this_release_refuses_breaks_nothing(app, client, auth_headers):
    assert put(client, auth_headers, BOOK).status_code == 201
    nan = float("nan") if app.extensions["welead"].db.engine.dialect.name == "sqlite" else None  # jsonb: no NaN
    source = "rules:\n  - {name: x, when: {text: {regex: '(a)\\1'}}, do: [{reply: hi}]}\n"
    store_unchecked(app, source, {"rules": [{"name": "x"}], "stages": {"order": [{"name": "new", "at": nan}]}})
    time.sleep(store.VERSION_TTL + 0.1)  # callbacks look for a new version once a second
    r = post(client, "text", openid="o-after", content="aa")
    assert r.status_code == 200 and r.data == b"success"  # answered without rules, not a 500 per callback
    got = client.get("/api/v1/playbook", headers=auth_headers)
    assert got.status_code == 200 and json.loads(got.data, parse_constant=_refuse)["version"] == 2
    drain(app)
    with app.extensions["welead"].db.sessions() as s:
        assert s.scalar(select(Interaction.apply_error)) is None


def _refuse(name: str):
    raise AssertionError(f"{name} in a JSON answer")


# --- 3. oversized uploads, chunked or not -----------------------------------------------------------------------


def send_chunked(base: str, path: str, body: bytes, headers: dict[str, str], method: str = "PUT") -> tuple[int, bytes]:
    """A real chunked request (no Content-Length) to a real server."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
        conn.request(method, path, body=chunks, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_chunked_playbook_over_the_cap_is_413_never_a_truncated_load(app, auth_headers):
    cap = app.config["MAX_CONTENT_LENGTH"]
    padding = "".join(f"  - {{name: r{i}, when: any, do: [{{tag: t{i}}}]}}\n" for i in range(4000))
    big = ("name: big\nrules:\n" + padding).encode()
    assert len(big) > cap and parse(big[:cap].decode().rsplit("\n", 1)[0])  # its first 64 KiB alone is valid
    small = BOOK.encode()
    headers = {**auth_headers, **YAML, "Transfer-Encoding": "chunked"}
    with serve(app) as base:
        assert send_chunked(base, "/api/v1/playbook", small, headers)[0] == 201
        status, _ = send_chunked(base, "/api/v1/playbook", big, headers)
        assert status == 413
        status, _ = send_chunked(base, "/api/v1/playbook/check", big, headers, "POST")
        assert status == 413
    with app.extensions["welead"].db.sessions() as s:
        assert [v.name for v in s.scalars(select(PlaybookVersion))] == ["hostile"]


def test_chunked_body_of_exactly_the_cap_is_read_whole(app, client, auth_headers):
    cap = app.config["MAX_CONTENT_LENGTH"]
    text = BOOK + "#" * (cap - len(BOOK.encode()) - 1) + "\n"
    assert len(text.encode()) == cap
    headers = {**auth_headers, **YAML, "Transfer-Encoding": "chunked"}
    with serve(app) as base:
        assert send_chunked(base, "/api/v1/playbook", text.encode(), headers)[0] == 201

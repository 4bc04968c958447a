# ruff: noqa: RUF001  (follower text: full-width punctuation on purpose)
"""The knowledge base: `flask faq load` (YAML, CSV) atomic and versioned, bad files refused naming the entry with
the old one kept, the demo loaded into an empty database, the entries API (each change a version), `faq ask` and
`POST /api/v1/faq/ask` (the DESIGN.md contract), and the index rebuilt in a running process when the FAQ changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAQ = ROOT / "playbooks" / "faq_demo.yaml"
SMALL = """
- id: hours
  questions: [几点上班, 营业时间]
  answer: 工作日 9:00-18:00。
- id: price
  questions: [多少钱, 价格]
  answer: 1980 元一年。
  tags: [interest:pricing]
  points: 5
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def faq(client, headers) -> dict:
    r = client.get("/api/v1/faq", headers=headers)
    assert r.status_code == 200, r.json
    return r.json


def test_load_yaml_then_a_bad_file_is_refused_and_the_old_one_stays(runner, client, auth_headers, tmp_path):
    r = runner.invoke(args=["faq", "load", write(tmp_path, "kb.yaml", SMALL)])
    assert r.exit_code == 0 and "version 1" in r.output, r.output
    bad = SMALL + "- id: hours\n  questions: [x]\n  answer: y\n- id: empty\n  questions: [z]\n  answer: ''\n"
    r = runner.invoke(args=["faq", "load", write(tmp_path, "bad.yaml", bad)])
    assert r.exit_code != 0
    assert "duplicate id 'hours'" in r.output and "(id 'empty'): answer is missing" in r.output
    r = runner.invoke(args=["faq", "load", write(tmp_path, "broken.yaml", "- id: [\n")])
    assert r.exit_code != 0 and "line 2" in r.output
    got = faq(client, auth_headers)
    assert got["version"] == 1 and [e["id"] for e in got["entries"]] == ["hours", "price"]
    assert got["entries"][1] == {"id": "price", "questions": ["多少钱", "价格"], "answer": "1980 元一年。",
                                 "tags": ["interest:pricing"], "points": 5}  # fmt: skip


def test_load_csv(runner, client, auth_headers, tmp_path):
    text = 'id,questions,answer,tags,points\nhours,几点上班|营业时间,9点到6点,,\nprice,多少钱,1980元,"a,b",3\n'
    r = runner.invoke(args=["faq", "load", write(tmp_path, "kb.csv", text)])
    assert r.exit_code == 0, r.output
    entries = faq(client, auth_headers)["entries"]
    assert entries[0]["questions"] == ["几点上班", "营业时间"] and entries[1]["tags"] == ["a", "b"]
    assert entries[1]["points"] == 3


def test_demo_faq_loads_into_an_empty_database_only(runner, client, auth_headers, tmp_path):
    r = runner.invoke(args=["faq", "load-demo-if-empty"])
    assert r.exit_code == 0 and "as version 1" in r.output, r.output
    assert faq(client, auth_headers)["count"] >= 40
    r = runner.invoke(args=["faq", "load-demo-if-empty"])
    assert "already" in r.output and faq(client, auth_headers)["version"] == 1


def test_entries_api_each_change_a_version(client, auth_headers):
    new = {"id": "refund", "questions": ["能退款吗"], "answer": "7 天内可全额退款。", "tags": ["after-sales"]}
    r = client.post("/api/v1/faq", json=new, headers=auth_headers)
    assert r.status_code == 201 and r.json["version"] == 1, r.json
    assert client.post("/api/v1/faq", json=new, headers=auth_headers).status_code == 409
    r = client.put("/api/v1/faq/entries/refund", json={"questions": ["可以退款吗"], "answer": "30 天内可退。"},
                   headers=auth_headers)  # fmt: skip
    assert r.status_code == 200 and r.json["version"] == 2
    assert client.get("/api/v1/faq/entries/refund", headers=auth_headers).json["answer"] == "30 天内可退。"
    r = client.put("/api/v1/faq/entries/refund", json={"questions": ["x"], "answer": "  "}, headers=auth_headers)
    assert r.status_code == 422 and "answer is missing or empty" in r.json["detail"]["errors"][0]
    assert client.delete("/api/v1/faq/entries/nope", headers=auth_headers).status_code == 404
    assert client.delete("/api/v1/faq/entries/refund", headers=auth_headers).json["version"] == 3
    versions = client.get("/api/v1/faq/versions", headers=auth_headers).json["items"]
    assert [v["change"] for v in versions] == ["delete refund", "put refund", "add refund"]


def test_put_whole_faq_as_yaml_or_csv(client, auth_headers):
    r = client.put("/api/v1/faq", data=SMALL, headers={**auth_headers, "Content-Type": "application/yaml"})
    assert r.status_code == 201 and r.json["entries"] == 2
    csv_text = "id,questions,answer\na,问题,答案\n"
    r = client.put("/api/v1/faq", data=csv_text, headers={**auth_headers, "Content-Type": "text/csv"})
    assert r.status_code == 201 and r.json["entries"] == 1
    r = client.put("/api/v1/faq", data="- id: a\n  answer: b\n", headers={**auth_headers, "Content-Type": "text/yaml"})
    assert r.status_code == 422 and "questions" in r.json["detail"]["errors"][0]
    assert faq(client, auth_headers)["count"] == 1


def test_ask_contract_and_the_index_follows_changes(client, runner, auth_headers, tmp_path):
    runner.invoke(args=["faq", "load", write(tmp_path, "kb.yaml", SMALL)])
    r = client.post("/api/v1/faq/ask", json={"text": "价格多少？"}, headers=auth_headers)
    assert r.status_code == 200, r.json
    assert {"id", "answer", "score", "fallback", "runner_up"} <= set(r.json)
    assert r.json["id"] == "price" and r.json["answer"] == "1980 元一年。" and r.json["fallback"] is False
    assert 0 < r.json["score"] <= 1
    miss = client.post("/api/v1/faq/ask", json={"text": "火星上能用吗"}, headers=auth_headers).json
    assert miss["fallback"] is True and miss["id"] is None and "人工" in miss["answer"]
    client.put("/api/v1/faq/entries/price", json={"questions": ["多少钱", "价格"], "answer": "2980 元一年。"},
               headers=auth_headers)  # fmt: skip
    again = client.post("/api/v1/faq/ask", json={"text": "价格多少？"}, headers=auth_headers).json
    assert again["answer"] == "2980 元一年。"  # the same process rebuilt its index for the new version
    assert client.post("/api/v1/faq/ask", json={"txt": "x"}, headers=auth_headers).status_code == 422


def test_flask_faq_ask(runner, tmp_path):
    runner.invoke(args=["faq", "load", write(tmp_path, "kb.yaml", SMALL)])
    r = runner.invoke(args=["faq", "ask", "几点上班呀"])
    assert r.exit_code == 0 and r.output.startswith("answer  entry=hours") and "9:00-18:00" in r.output
    out = json.loads(runner.invoke(args=["faq", "ask", "--json", "转人工"]).output)
    assert out["kind"] == "handoff" and out["handoff"] is True


@pytest.mark.parametrize("text", ["", "😀", "]]>", "价格" * 1000])
def test_ask_never_fails(client, runner, auth_headers, tmp_path, text):
    runner.invoke(args=["faq", "load", write(tmp_path, "kb.yaml", SMALL)])
    assert client.post("/api/v1/faq/ask", json={"text": text}, headers=auth_headers).status_code == 200

"""FAQ files → validated entries: YAML (the DESIGN.md shape) or CSV, bounded like the playbook's text.

A file is refused as a whole, naming every bad entry (duplicate ids, empty answers or questions, unknown fields,
bad YAML with its line), so a load either replaces the knowledge base completely or changes nothing.

YAML: a list of `{id, questions: [...], answer, tags: [...], points}` (or a mapping with an `entries` list).
CSV: a header row with `id,questions,answer,tags,points`; questions separated by `|` or new lines, tags by `,`
or `|`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from scrm.playbook.source import SourceError
from scrm.playbook.source import load as load_yaml

MAX_ENTRIES = 10_000
MAX_QUESTIONS = 50  # per entry
MAX_QUESTION = 500  # characters
MAX_ANSWER = 2_000  # characters
MAX_ID = 64
MAX_TAG = 30  # WeChat's tag name limit
MAX_TAGS = 20
MAX_POINTS = 1_000
FIELDS = frozenset({"id", "questions", "answer", "tags", "points"})


class FaqError(ValueError):
    """The knowledge base is refused; `errors` name each entry and problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    questions: tuple[str, ...]
    answer: str
    tags: tuple[str, ...] = ()
    points: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "questions": list(self.questions), "answer": self.answer,
                               "tags": list(self.tags), "points": self.points}  # fmt: skip
        return out


def parse_text(text: str, name: str = "") -> list[Entry]:
    """Entries of a YAML (default) or CSV (`name` ends with .csv) file; FaqError naming what is wrong."""
    if name.lower().endswith(".csv"):
        return check(_csv(text))
    try:
        doc = load_yaml(text)
    except SourceError as exc:
        raise FaqError([str(exc).replace("the playbook", "the FAQ")]) from None
    if isinstance(doc, dict) and "entries" in doc:
        doc = doc["entries"]
    if not isinstance(doc, list):
        raise FaqError(["expected a list of entries ({id, questions, answer, tags})"])
    return check(doc)


def _csv(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames or not {"id", "answer"} <= {f.strip() for f in reader.fieldnames}:
        raise FaqError(["CSV: the header row must name id, questions, answer (and optionally tags, points)"])
    out = []
    for row in reader:
        item = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}
        item["questions"] = [q.strip() for q in item.get("questions", "").replace("\n", "|").split("|") if q.strip()]
        item["tags"] = [t.strip() for t in item.get("tags", "").replace("|", ",").split(",") if t.strip()]
        item["points"] = _csv_points(item.get("points", ""))
        out.append(item)
    return out


def _csv_points(raw: str) -> Any:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw  # refused by check, naming the entry


def check(items: list[Any]) -> list[Entry]:
    """Entries from plain data, or FaqError listing every problem."""
    if len(items) > MAX_ENTRIES:
        raise FaqError([f"{len(items)} entries; at most {MAX_ENTRIES}"])
    errors: list[str] = []
    out: list[Entry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"entry {i + 1}"
        if not isinstance(item, dict):
            errors.append(f"{where}: expected a mapping with id, questions, answer")
            continue
        if "id" in item and isinstance(item["id"], str | int) and not isinstance(item["id"], bool):
            where = f"entry {i + 1} (id {str(item['id'])[:MAX_ID]!r})"
        raw_id = str(item.get("id", "")).strip()
        if raw_id and raw_id in seen:
            errors.append(f"{where}: duplicate id {raw_id!r} (also entry {seen[raw_id] + 1})")
            continue
        seen.setdefault(raw_id, i)
        problems = list(_problems(item))
        if problems:
            errors += [f"{where}: {p}" for p in problems]
            continue
        out.append(_entry(item))
    if errors:
        raise FaqError(errors)
    return out


def _problems(item: dict[str, Any]) -> list[str]:
    out = []
    raw_id = item.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
        out.append("id is missing or empty")
    elif len(str(raw_id).strip()) > MAX_ID:
        out.append(f"id longer than {MAX_ID} characters")
    elif any(c == "/" or c.isspace() or not c.isprintable() for c in str(raw_id).strip()):
        out.append("id may not contain spaces, slashes or control characters (it is part of /api/v1/faq/<id>)")
    questions = item.get("questions")
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not questions:
        out.append("questions: give at least one question")
    elif len(questions) > MAX_QUESTIONS:
        out.append(f"questions: at most {MAX_QUESTIONS}")
    elif any(not isinstance(q, str) or not q.strip() or len(q) > MAX_QUESTION for q in questions):
        out.append(f"questions: each one non-empty text of at most {MAX_QUESTION} characters")
    answer = item.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        out.append("answer is missing or empty")
    elif len(answer) > MAX_ANSWER:
        out.append(f"answer longer than {MAX_ANSWER} characters")
    out += _tag_problems(item.get("tags"))
    points = _whole(item.get("points"))
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or abs(points) > MAX_POINTS):
        out.append(f"points: a whole number between -{MAX_POINTS} and {MAX_POINTS}")
    return out


def _whole(value: Any) -> Any:
    """JSON's 336.0 is the integer 336 (JSON Schema agrees); anything else stays as it is, to be refused."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _tag_problems(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        return [f"tags: a list of at most {MAX_TAGS} names"]
    if any(not isinstance(t, str) or not t.strip() or len(t) > MAX_TAG for t in tags):
        return [f"tags: each one non-empty text of at most {MAX_TAG} characters"]
    return []


def _entry(item: dict[str, Any]) -> Entry:
    questions = item["questions"] if isinstance(item["questions"], list) else [item["questions"]]
    tags = item.get("tags") or []
    tags = [tags] if isinstance(tags, str) else tags
    extra = {k: v for k, v in item.items() if k not in FIELDS and _plain(v)}
    return Entry(
        id=str(item["id"]).strip(),
        questions=tuple(q.strip() for q in questions),
        answer=item["answer"].strip(),
        tags=tuple(dict.fromkeys(t.strip() for t in tags)),
        points=_whole(item.get("points")),
        extra=extra,
    )


def _plain(value: Any) -> bool:
    """Extra fields are kept when they are JSON (a YAML date or a NaN is not)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))

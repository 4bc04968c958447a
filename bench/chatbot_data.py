"""Shared by bench/chatbot_eval.py and bench/chatbot_fit.py: the demo FAQ, the evaluation set and its fixed split,
the two baselines, the synthetic 5,000-entry FAQ and the scoring of a run.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scrm.faq_match import Entry  # noqa: E402

FAQ = ROOT / "playbooks" / "faq_demo.yaml"
EVAL = ROOT / "bench" / "chatbot" / "eval.yaml"
EXTRA = ROOT / "bench" / "chatbot" / "train_extra.yaml"
DEV_EXTRA = ROOT / "bench" / "chatbot" / "dev_extra.yaml"
DEV_FRESH = ROOT / "bench" / "chatbot" / "dev_fresh.yaml"
OUT = "_out"  # the expected id of an out-of-scope question


@dataclass(frozen=True)
class Item:
    text: str
    expected: str | None  # None: out of scope (greetings included)


def load_faq(path: Path = FAQ) -> list[Entry]:
    return [Entry(str(e["id"]), tuple(e["questions"]), e["answer"]) for e in yaml.safe_load(path.read_text())]


def is_dev(text: str) -> bool:
    """The split, fixed up front: 60% dev (tuning, cross-validation), 40% test (reported)."""
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % 10 < 6


def load_eval(part: str) -> list[Item]:
    """part: "dev", "test" or "all"."""
    items = []
    for key, questions in yaml.safe_load(EVAL.read_text()).items():
        for q in questions or []:
            q = str(q)
            if part == "all" or is_dev(q) == (part == "dev"):
                items.append(Item(str(q), None if key == OUT else key))
    return items


def load_extra() -> list[Item]:
    """Out-of-scope questions that only train the accept model (bench/chatbot/train_extra.yaml)."""
    return [Item(str(q), None) for q in yaml.safe_load(EXTRA.read_text())[OUT]]


def load_dev_extra(paths: tuple[Path, ...] = (DEV_EXTRA, DEV_FRESH)) -> list[Item]:
    """More development questions, in scope and out (bench/chatbot/dev_extra.yaml and dev_fresh.yaml): fitted and
    cross-validated on with the dev part, never in the held-out table."""
    items = []
    for path in paths:
        data = yaml.safe_load(path.read_text())
        items += [Item(str(q), None if key == OUT else key) for key, qs in data.items() for q in qs or []]
    return items


@dataclass
class Outcome:
    """One question's result: the top entry, whether it was answered, and the time taken."""

    item: Item
    top: str | None
    answered: bool
    ms: float


def table_row(name: str, outcomes: list[Outcome]) -> str:
    ins = [o for o in outcomes if o.item.expected]
    outs = [o for o in outcomes if not o.item.expected]
    top1 = sum(o.top == o.item.expected for o in ins) / max(1, len(ins))
    right = sum((o.answered and o.top == o.item.expected) if o.item.expected else not o.answered for o in outcomes)
    rejected = sum(not o.answered for o in outs) / max(1, len(outs))
    ms = sorted(o.ms for o in outcomes)
    return (
        f"| {name} | {top1:.1%} | {right / max(1, len(outcomes)):.1%} | {rejected:.1%} "
        f"| {percentile(ms, 50):.2f} ms | {percentile(ms, 99):.2f} ms |"
    )


def intervals(outcomes: list[Outcome]) -> str:
    """95% Wilson intervals of the three rates: with ~120 and ~37 questions a few points are noise."""
    ins = [o for o in outcomes if o.item.expected]
    outs = [o for o in outcomes if not o.item.expected]
    rates = {
        "top-1": (sum(o.top == o.item.expected for o in ins), len(ins)),
        "correct": (
            sum((o.answered and o.top == o.item.expected) if o.item.expected else not o.answered for o in outcomes),
            len(outcomes),
        ),
        "rejected": (sum(not o.answered for o in outs), len(outs)),
    }
    return ", ".join(f"{k} {lo:.0%}-{hi:.0%}" for k, (lo, hi) in ((k, wilson(*v)) for k, v in rates.items()))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1)]


def best_threshold(scored: list[tuple[Item, str | None, float]]) -> float:
    """The single score threshold that maximises correct answer-or-fallback (for the baselines, on dev)."""
    best, best_t = -1, 0.0
    for t in [*sorted({s for _, _, s in scored}), math.inf]:
        right = sum((s >= t and top == it.expected) if it.expected else s < t for it, top, s in scored)
        if right > best:
            best, best_t = right, t
    return best_t


class CharTfidf:
    """Baseline: character uni+bigram TF-IDF cosine, an entry = its questions + answer, no normalisation."""

    def __init__(self, entries: list[Entry]) -> None:
        self.ids = [e.id for e in entries]
        docs = [self._grams(" ".join((*e.questions, e.answer))) for e in entries]
        df = Counter(g for d in docs for g in set(d))
        self.idf = {g: math.log((len(docs) + 1) / (n + 1)) + 1 for g, n in df.items()}
        self.vecs = [self._vec(d) for d in docs]

    @staticmethod
    def _grams(text: str) -> list[str]:
        chars = [c for c in text.lower() if c.isalnum()]
        return chars + [a + b for a, b in itertools.pairwise(chars)]

    def _vec(self, grams: list[str]) -> dict[str, float]:
        vec = {g: (1 + math.log(n)) * self.idf.get(g, 0.0) for g, n in Counter(grams).items()}
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        return {g: w / norm for g, w in vec.items()}

    def ask(self, text: str) -> tuple[str | None, float]:
        q = self._vec(self._grams(text))
        scores = [sum(w * v.get(g, 0.0) for g, w in q.items()) for v in self.vecs]
        best = max(range(len(scores)), key=scores.__getitem__)
        return (self.ids[best], scores[best]) if scores[best] > 0 else (None, 0.0)


class Bm25:
    """Baseline: jieba words + BM25Okapi (rank-bm25), an entry = its questions + answer."""

    def __init__(self, entries: list[Entry]) -> None:
        import jieba
        from rank_bm25 import BM25Okapi

        jieba.setLogLevel(60)
        self._cut = jieba.lcut
        self.ids = [e.id for e in entries]
        self.bm25 = BM25Okapi([self._words(" ".join((*e.questions, e.answer))) for e in entries])

    def _words(self, text: str) -> list[str]:
        return [w for w in self._cut(text.lower()) if w.strip() and any(c.isalnum() for c in w)] or ["_"]

    def ask(self, text: str) -> tuple[str | None, float]:
        scores = self.bm25.get_scores(self._words(text))
        best = int(scores.argmax())
        return (self.ids[best], float(scores[best])) if scores[best] > 0 else (None, 0.0)


def synthetic_faq(base: list[Entry], size: int, seed: int = 11) -> list[Entry]:
    """The demo entries plus generated ones built from the demo's own words, so postings are as dense as a real FAQ."""
    rng = random.Random(seed)
    words = sorted({q[i : i + 2] for e in base for q in (*e.questions, e.answer) for i in range(len(q) - 1)})
    words = [w for w in words if all("\u4e00" <= c <= "\u9fff" for c in w)]
    out = list(base)
    while len(out) < size:
        questions = tuple("".join(rng.choices(words, k=rng.randint(3, 6))) + "吗" for _ in range(rng.randint(2, 4)))
        out.append(Entry(f"gen{len(out)}", questions, "".join(rng.choices(words, k=rng.randint(15, 40)))))
    return out

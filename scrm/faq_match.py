"""FAQ retrieval: which entry answers a follower's question, or an honest fallback. Pure Python, built in memory.

Signals per candidate entry (scrm/faq_text.py makes the grams): character uni+bigram TF-IDF against each of the
entry's questions and against the whole entry (questions + answer), pinyin syllable bigrams (homophones and IME
typos), and coverage (how much of the question the entry explains, how much of the entry's question the follower
said). A linear ranker orders the candidates; a logistic accept model on the winner's score, its margin to the
runner-up and its coverage decides answer or fallback. Weights and threshold are fitted on the dev part of
bench/chatbot/eval.yaml (bench/chatbot_fit.py) and live in scrm/faq_weights.py. docs/chatbot-matching.md.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Container, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from scrm import faq_weights
from scrm.faq_lexicon import EXPAND, FOREIGN
from scrm.faq_text import char_grams, content, expand, is_greeting, normalise, pinyin_grams, subject

__all__ = ["Entry", "Index", "Match", "normalise"]

QUERY_CHARS = 160  # content characters of a question that are matched: a 2,000-character paste costs as much as this
CANDIDATES = 12  # entries the ranker looks at, taken from the cheap first pass


@dataclass(frozen=True)
class Entry:
    id: str
    questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Match:
    """kind: "answer" (entry_id is the answer), "greeting" (small talk) or "fallback" (offer a human)."""

    kind: str
    entry_id: str | None
    score: float
    runner_up: str | None
    runner_up_score: float


@dataclass
class _Field:
    """One TF-IDF space: documents are questions or whole entries; postings hold length-normalised weights."""

    idf: dict[str, float]
    missing_idf: float
    postings: dict[str, tuple[array[int], array[float]]]

    def weights(self, grams: list[str]) -> dict[str, float]:
        return {g: (1.0 + math.log(n)) * self.idf.get(g, self.missing_idf) for g, n in Counter(grams).items()}


def _idf(docs: list[list[str]]) -> tuple[dict[str, float], float]:
    df: Counter[str] = Counter()
    for grams in docs:
        df.update(set(grams))
    n = len(docs)
    return {g: math.log((n + 1) / (d + 1)) + 1.0 for g, d in df.items()}, math.log(n + 1) + 1.0


class _Grams:
    """The grams of entry `i`, read from the postings (ids are ascending): no set per entry is kept."""

    __slots__ = ("field", "i")

    def __init__(self, field: _Field, i: int) -> None:
        self.field, self.i = field, i

    def __contains__(self, gram: object) -> bool:
        posting = self.field.postings.get(gram) if isinstance(gram, str) else None
        if posting is None:
            return False
        k = bisect_left(posting[0], self.i)
        return k < len(posting[0]) and posting[0][k] == self.i


def _field(docs: list[list[str]]) -> _Field:
    """Postings as two compact arrays per gram (entry ids, normalised weights): a 5,000-entry FAQ stays small."""
    idf, missing = _idf(docs)
    field = _Field(idf, missing, {})
    ids: dict[str, list[int]] = defaultdict(list)
    weights: dict[str, list[float]] = defaultdict(list)
    for doc_id, grams in enumerate(docs):
        vec = field.weights(grams)
        norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
        for g, w in vec.items():
            ids[g].append(doc_id)
            weights[g].append(w / norm)
    field.postings = {g: (array("I", ids[g]), array("f", weights[g])) for g in ids}
    return field


def _dot(field: _Field, query: dict[str, float]) -> dict[int, float]:
    norm = math.sqrt(sum(w * w for w in query.values())) or 1.0
    acc: dict[int, float] = defaultdict(float)
    for g, w in query.items():
        posting = field.postings.get(g)
        if posting is not None:
            scale = w / norm
            for doc_id, dw in zip(*posting, strict=True):
                acc[doc_id] += scale * dw
    return acc


def _coverage(query: dict[str, float], present: Container[str]) -> float:
    total = sum(query.values())
    return sum(w for g, w in query.items() if g in present) / total if total else 0.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))


class Index:
    """An immutable in-memory index over one FAQ version; `ask` is safe from several threads."""

    def __init__(self, entries: Sequence[Entry], threshold: float | None) -> None:
        self.entries = list(entries)
        self.threshold = faq_weights.THRESHOLD if threshold is None else threshold
        self._rank_w = faq_weights.RANK
        self._accept_w = faq_weights.ACCEPT
        e_runs = [_runs(" ".join((*e.questions, e.answer))) for e in self.entries]
        e_char = [[sys.intern(g) for g in char_grams(r)] for r in e_runs]  # one string object per distinct gram
        e_pin = [[sys.intern(g) for g in pinyin_grams(r)] for r in e_runs]
        self._char = _field(e_char)
        self._pin = _field(e_pin)
        # bigrams of the domain: the FAQ's and the followers' words in the paraphrase lexicon
        self._known_pairs = {g for g in self._char.idf if len(g) == 2} | {
            k[i : i + 2] for k in EXPAND for i in range(len(k) - 1)
        }
        faq_text = " ".join(normalise(" ".join((*e.questions, e.answer))) for e in self.entries)
        self._foreign = [w for w in FOREIGN if w not in faq_text]  # subjects this FAQ never talks about
        self._offtopic = [_unit(self._char.weights(char_grams(_runs(q)))) for q in _offtopic_questions()]
        # each question as a unit vector in the entry-level spaces: the exact features of a candidate
        self._q_char: list[list[dict[str, float]]] = []
        self._q_pin: list[list[dict[str, float]]] = []
        for entry in self.entries:
            runs = [_runs(q) for q in entry.questions]
            self._q_char.append([_unit(self._char.weights([sys.intern(g) for g in char_grams(r)])) for r in runs])
            self._q_pin.append([_unit(self._pin.weights([sys.intern(g) for g in pinyin_grams(r)])) for r in runs])

    @classmethod
    def build(cls, entries: Sequence[Entry], threshold: float | None = None) -> Index:
        """Index `entries`; `threshold` (0..1, on Match.score) overrides the fitted one. Duplicate ids are refused."""
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise ValueError(f"duplicate FAQ entry id {entry.id!r}")
            seen.add(entry.id)
        return cls(entries, threshold)

    def ask(self, text: str) -> Match:
        """Answer, greeting or fallback for one follower message; never raises on any string."""
        norm = normalise(text or "")
        if is_greeting(norm):
            return Match("greeting", None, 1.0, None, 0.0)
        runs = _clip(content(expand(norm)), QUERY_CHARS)
        if not _topical(runs) or not self.entries:
            return Match("fallback", None, 0.0, None, 0.0)
        ranked = self._rank(runs)
        if not ranked:
            return Match("fallback", None, 0.0, None, 0.0)
        s1, i1, f1 = ranked[0]
        s2, i2, f2 = ranked[1] if len(ranked) > 1 else (0.0, None, f1)  # no runner-up: an entry sharing nothing
        total = sum(math.exp(s - s1) for s, _, _ in ranked)  # the ranker's softmax share of each candidate
        score = self._confidence(s1, s1 - s2, 1.0 / total, f1)
        runner = self.entries[i2].id if i2 is not None else None
        runner_score = self._confidence(s2, s2 - s1, math.exp(s2 - s1) / total, f2) if i2 is not None else 0.0
        kind = "answer" if score >= self.threshold else "fallback"
        return Match(kind, self.entries[i1].id, round(score, 4), runner, round(runner_score, 4))

    def candidates(self, text: str) -> list[tuple[str, list[float]]]:
        """The ranker's candidates and their features, best first pass first (for fitting: bench/chatbot_fit.py)."""
        runs = _clip(_runs(text or ""), QUERY_CHARS)
        return [(self.entries[i].id, f) for i, f in self._candidates(runs)] if _topical(runs) else []

    def _rank(self, runs: list[str]) -> list[tuple[float, int, list[float]]]:
        scored = [(sum(w * x for w, x in zip(self._rank_w, f, strict=True)), i, f) for i, f in self._candidates(runs)]
        return sorted(scored, key=lambda t: -t[0])

    def _confidence(self, score: float, margin: float, share: float, feats: list[float]) -> float:
        x = [
            score,
            margin,
            share,
            *feats,
            score * feats[6],
            score * feats[8],
            score * feats[9],
            1.0,
        ]  # 6, 8, 9: see _candidates
        return _sigmoid(sum(w * v for w, v in zip(self._accept_w, x, strict=True)))

    def _candidates(self, runs: list[str]) -> list[tuple[int, list[float]]]:
        """First pass over the entry-level postings (char + pinyin), then exact features for the best few."""
        qc = self._char.weights(char_grams(runs))
        qp = self._pin.weights(pinyin_grams(runs))
        by_e = _dot(self._char, qc)
        by_p = _dot(self._pin, qp)
        first = Counter({i: by_e.get(i, 0.0) + by_p.get(i, 0.0) for i in {*by_e, *by_p}})
        qc_unit, qp_unit, qc_set = _unit(qc), _unit(qp), set(qc)
        pairs = {g: w for g, w in qc.items() if len(g) > 1}  # bigrams and ASCII words: what names a topic
        known = _coverage(pairs, self._char.idf.keys()) if pairs else 1.0
        length = math.log1p(len(qc)) / 5.0
        chars = [g for g in qc if len(g) == 1 or g.isascii()]
        strange = sum(g not in self._char.idf for g in chars) / (len(chars) or 1)  # words the FAQ never uses
        isolated = _isolated(runs, self._known_pairs)
        offtopic = max((_cos(qc_unit, v) for v in self._offtopic), default=0.0)
        text = "".join(runs)
        foreign = float(any(w in text for w in self._foreign))
        subj = self._char.weights(char_grams(subject(runs)))  # what it is about, the template taken out
        subj_known = _coverage(subj, self._char.idf.keys()) if subj else 1.0
        subj_pin = self._pin.weights(pinyin_grams(subject(runs)))  # the subject as it sounds: 被份 meets 备份
        out = []
        for i, _ in first.most_common(CANDIDATES):
            feats = [
                max((_cos(qc_unit, v) for v in self._q_char[i]), default=0.0),
                by_e.get(i, 0.0),
                max((_cos(qp_unit, v) for v in self._q_pin[i]), default=0.0),
                _coverage(qc, _Grams(self._char, i)),
                max((_coverage(v, qc_set) for v in self._q_char[i]), default=0.0),
                _coverage(qp, _Grams(self._pin, i)),
                _coverage(pairs, _Grams(self._char, i)) if pairs else 1.0,
                length,
                known,
                strange,
                max((w for g, w in pairs.items() if g not in _Grams(self._char, i)), default=0.0)
                / self._char.missing_idf,
                isolated,
                offtopic,
                foreign,
                _coverage(subj, _Grams(self._char, i)) if subj else 1.0,
                max((_coverage(subj, v) for v in self._q_char[i]), default=0.0) if subj else 1.0,
                subj_known,
                _coverage(subj_pin, _Grams(self._pin, i)) if subj_pin else 1.0,
                max((_coverage(subj_pin, v) for v in self._q_pin[i]), default=0.0) if subj_pin else 1.0,
            ]
            out.append((i, feats))
        return out


def _topical(runs: list[str]) -> bool:
    """Something besides numbers: "1", "123456" name no topic (the FAQ's prices would otherwise answer them)."""
    return any(not r.isdigit() for r in runs)


def _runs(text: str) -> list[str]:
    return content(expand(normalise(text)))


@lru_cache(maxsize=1)
def _offtopic_questions() -> tuple[str, ...]:
    """General-life questions (scrm/faq_offtopic.txt): resembling one more than any entry suggests "not about us"."""
    text = Path(__file__).with_name("faq_offtopic.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _isolated(runs: list[str], known: set[str]) -> float:
    """Share of CJK characters in no domain bigram: 银行几点下班 has 银行 and 下班 outside, 客服几点下班 only 下班."""
    total = alone = 0
    for run in runs:
        if run.isascii():
            continue
        for j in range(len(run)):
            total += 1
            alone += run[max(0, j - 1) : j + 1] not in known and run[j : j + 2] not in known
    return alone / total if total else 0.0


def _unit(vec: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
    return {g: w / norm for g, w in vec.items()}


def _cos(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(g, 0.0) for g, w in a.items())


def _clip(runs: list[str], limit: int) -> list[str]:
    out, used = [], 0
    for run in runs:
        if used >= limit:
            break
        out.append(run[: limit - used])
        used += len(out[-1])
    return out

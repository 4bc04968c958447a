#!/usr/bin/env python3
"""Fits the FAQ matcher's weights on the development questions (the dev part of bench/chatbot/eval.yaml,
bench/chatbot/dev_extra.yaml and dev_fresh.yaml; train_extra.yaml only trains the accept model) and writes
scrm/faq_weights.py. dev_fresh is reported apart: it is judged in aggregate only, never item by item.

    .venv/bin/python bench/chatbot_fit.py [--objective targets|balanced|correct] [--dry-run]

Ranker: a linear score per candidate, trained listwise (softmax over a question's candidates, L2). Accept model:
logistic regression on the winner's score, its margin to the runner-up and its features; label = the winner is the
expected entry. Its inputs come out of fold (5 folds: the ranker that scores a fold never saw it), and the threshold
is the one that maximises the objective (choose_threshold) over the out-of-fold probabilities. The test (held-out)
part is never read here.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from chatbot_data import DEV_EXTRA, DEV_FRESH, ROOT, Item, load_dev_extra, load_eval, load_extra, load_faq

from scrm.faq_match import Index
from scrm.faq_text import is_greeting, normalise

FOLDS = 5
L2_RANK = 0.01
_NAMES = (
    "qmax entry pinyin qcov keycov pincov bicov length known strange unexplained isolated offtopic foreign"
    " subject subject_q subject_known subject_pin subject_pin_q"
)
RANK_NAMES = tuple(_NAMES.split())
L2_ACCEPT = 0.003  # chosen out of fold on dev among 0.001-0.1 (balanced objective)


def featurise(index: Index, items: list[Item]) -> list[tuple[Item, list[str], np.ndarray]]:
    """Each non-greeting dev question with its candidates' ids and features (the greetings never reach the ranker)."""
    out = []
    for it in items:
        if is_greeting(normalise(it.text)):
            continue
        cands = index.candidates(it.text)
        if cands:
            out.append((it, [c for c, _ in cands], np.array([f for _, f in cands])))
    return out


def greetings(index: Index, items: list[Item]) -> tuple[int, int]:
    """How many questions, in scope and out of scope, never reach the ranker: greetings, and those without a topic
    (only numbers or punctuation: a fallback without a candidate)."""
    taken = [it for it in items if is_greeting(normalise(it.text)) or not index.candidates(it.text)]
    return sum(1 for it in taken if it.expected), sum(1 for it in taken if not it.expected)


def fit_ranker(rows: list[tuple[Item, list[str], np.ndarray]], steps: int = 600, lr: float = 0.5) -> np.ndarray:
    data = [(x, ids.index(it.expected)) for it, ids, x in rows if it.expected in ids and len(ids) > 1]
    w = np.zeros(data[0][0].shape[1]) if data else np.zeros(len(RANK_NAMES))
    for _ in range(steps):
        grad = L2_RANK * w
        for x, target in data:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad += (x.T @ p - x[target]) / len(data)
        w -= lr * grad
    return w


def accept_features(rows: list[tuple[Item, list[str], np.ndarray]], w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for it, ids, x in rows:
        s = x @ w
        order = np.argsort(-s)
        s1 = s[order[0]]
        s2 = s[order[1]] if len(order) > 1 else 0.0
        f = x[order[0]]
        share = 1.0 / np.exp(s - s1).sum()
        xs.append([s1, s1 - s2, share, *f, s1 * f[6], s1 * f[8], s1 * f[9], 1.0])  # as Index._confidence
        ys.append(1.0 if ids[order[0]] == it.expected else 0.0)
    return np.array(xs), np.array(ys)


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 4000, lr: float = 0.5) -> np.ndarray:
    """Gradient descent on standardised columns (the last column is the bias), weights mapped back to raw inputs."""
    mean, std = x[:, :-1].mean(axis=0), x[:, :-1].std(axis=0) + 1e-9
    z = np.hstack([(x[:, :-1] - mean) / std, x[:, -1:]])
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) / len(y)
        grad[:-1] += L2_ACCEPT * w[:-1]
        w -= lr * grad
    raw = np.append(w[:-1] / std, w[-1] - (w[:-1] * mean / std).sum())
    return raw


def choose_threshold(p: np.ndarray, y: np.ndarray, inside: np.ndarray, objective: str, greet: tuple[int, int]) -> float:
    """The threshold on out-of-fold probabilities that maximises `objective` over the whole dev part (the greetings,
    which never reach the accept model, counted as rejected: greet = (in scope, out of scope) greeting counts).

    correct: right answers + rejected out-of-scope questions, all questions alike (in scope outnumbers out 4:1).
    balanced: the mean of "in scope answered right" and "out of scope rejected", each a target of its own.
    targets: the lower of "correct" and "out of scope rejected", the issue's two targets that a threshold trades.
    Cuts are midpoints between neighbouring probabilities, so the choice does not sit on one question."""
    ps = np.sort(np.unique(p))
    cuts = np.concatenate([[0.0], (ps[1:] + ps[:-1]) / 2, [1.0]])
    n_in, n_out = inside.sum() + greet[0], (~inside).sum() + greet[1]

    def value(t: float) -> float:
        right = ((p >= t) & (y == 1)).sum()
        rejected = ((p < t) & ~inside).sum() + greet[1]
        correct = (right + rejected) / (n_in + n_out)
        if objective == "targets":
            return min(correct, rejected / n_out) + 1e-3 * correct  # ties: the more correct one
        return correct if objective == "correct" else (right / n_in + rejected / n_out) / 2

    return float(max(cuts, key=value))


def development(index: Index) -> tuple[list[Item], list, list]:
    """The development questions (dev part + dev_extra.yaml), their rows, and the out-of-scope rows that only train."""
    items = load_eval("dev") + load_dev_extra()
    return items, featurise(index, items), featurise(index, load_extra())


def cross_fit(rows: list, extra: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold accept probabilities of `rows` (ranker and accept model never saw the question's fold), with the
    labels, in-scope mask, the rows' order, and the accept inputs of everything (to fit the final model on)."""
    everything = rows + extra
    rng = random.Random(7)
    folds = [rng.randrange(FOLDS) for _ in everything]
    oof_x, oof_y, order = [], [], []
    for k in range(FOLDS):
        w = fit_ranker([r for r, f in zip(everything, folds, strict=True) if f != k])
        held = [j for j, f in enumerate(folds) if f == k]
        x, y = accept_features([everything[j] for j in held], w)
        oof_x.append(x)
        oof_y.append(y)
        order.extend(held)
    x_all, y_all = np.concatenate(oof_x), np.concatenate(oof_y)
    fold_of = np.concatenate([[k] * len(x) for k, x in enumerate(oof_x)])
    p_oof = np.zeros(len(y_all))
    for k in range(FOLDS):
        wa = fit_logistic(x_all[fold_of != k], y_all[fold_of != k])
        p_oof[fold_of == k] = 1 / (1 + np.exp(-np.clip(x_all[fold_of == k] @ wa, -30, 30)))
    pos = np.argsort(order)[: len(rows)]  # back to the rows' order; the extra ones (after them) only train
    inside = np.array([r[0].expected is not None for r in rows])
    return p_oof[pos], y_all[pos], inside, np.array(order)[pos], (x_all, y_all)


def report(name: str, p: np.ndarray, y: np.ndarray, inside: np.ndarray, t: float, greet: tuple[int, int]) -> None:
    """The three rates over every question, greetings included (an out-of-scope greeting is a right rejection)."""
    a = p >= t
    n_in, n_out = inside.sum() + greet[0], (~inside).sum() + greet[1]
    right, rejected = (a & (y == 1)).sum(), (~a & ~inside).sum() + greet[1]
    print(
        f"  {name}: correct {(right + rejected) / (n_in + n_out):.1%}, in scope right {right / n_in:.1%}, "
        f"out of scope rejected {rejected / n_out:.1%}, top-1 {y[inside].sum() / n_in:.1%} ({n_in} in, {n_out} out)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    objectives = ["targets", "balanced", "correct"]
    parser.add_argument("--objective", choices=objectives, default="targets", help="see choose_threshold")
    parser.add_argument("--dry-run", action="store_true", help="print the weights, do not write scrm/faq_weights.py")
    args = parser.parse_args()
    index = Index.build(load_faq())
    items, rows, extra = development(index)
    ins = [r for r in rows if r[0].expected]
    recall = sum(r[0].expected in r[1] for r in ins) / len(ins)
    print(f"development: {len(rows)} questions past the greeting check (+{len(extra)} extra), recall {recall:.1%}")
    p_dev, y_dev, inside, _, (x_all, y_all) = cross_fit(rows, extra)
    threshold = choose_threshold(p_dev, y_dev, inside, args.objective, greetings(index, items))
    print(f"threshold {threshold:.3f}; out of fold:")
    greet = greetings(index, items)
    report("all development", p_dev, y_dev, inside, threshold, greet)
    for name, part in (("dev part", load_eval("dev")), ("dev_extra", load_dev_extra((DEV_EXTRA,)))):
        keep = np.array([r[0] in set(part) for r in rows])
        report(name, p_dev[keep], y_dev[keep], inside[keep], threshold, greetings(index, part))
    fresh = load_dev_extra((DEV_FRESH,))  # judged in aggregate only: what the lexicon never saw
    keep = np.array([r[0] in set(fresh) for r in rows])
    report("dev_fresh", p_dev[keep], y_dev[keep], inside[keep], threshold, greetings(index, fresh))
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):  # the trade-off, for the docs
        report(f"at {t:.1f}", p_dev, y_dev, inside, t, greet)
    rank_w = fit_ranker(rows)
    accept_w = fit_logistic(x_all, y_all)
    text = render(rank_w, accept_w, threshold)
    if not args.dry_run:
        out = ROOT / "scrm" / "faq_weights.py"
        out.write_text(text)
        ruff = Path(sys.executable).with_name("ruff")
        if ruff.exists():  # the checked-in file is in ruff's format, so `make lint` stays clean after a re-fit
            subprocess.run([str(ruff), "format", "-q", str(out)], check=False)


def render(rank_w: np.ndarray, accept_w: np.ndarray, threshold: float) -> str:
    def listing(name: str, values: np.ndarray) -> str:
        body = textwrap.fill(
            ", ".join(f"{v:.4f}" for v in values), 110, initial_indent="    ", subsequent_indent="    "
        )
        return f"{name} = [\n{body},\n]\n"

    return (
        '"""Fitted weights for scrm/faq_match.py.\n\nGenerated by bench/chatbot_fit.py from the dev part of '
        'bench/chatbot/eval.yaml; do not edit by hand."""\n\n'
        "# ranker, one weight per feature of Index._candidates: qmax, entry cosine, pinyin max, query coverage,\n"
        "# key coverage, pinyin coverage, bigram coverage, query length, known, strange, unexplained, isolated,\n"
        "# offtopic, foreign, subject coverage (entry, best question), subject known\n"
        + listing("RANK", rank_w)
        + "# accept (Index._confidence): ranker score, margin, softmax share, the 17 features,\n"
        "# score x (bigram coverage, known, strange), bias\n"
        + listing("ACCEPT", accept_w)
        + f"THRESHOLD = {threshold:.4f}\n"
    )


if __name__ == "__main__":
    main()

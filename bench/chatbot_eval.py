#!/usr/bin/env python3
"""FAQ matching accuracy and latency on the held-out part of bench/chatbot/eval.yaml, beside two baselines.

    .venv/bin/python bench/chatbot_eval.py [--part test|dev|all] [--size 5000] [--misses]

Columns: top-1 in scope (the best entry is the expected one, answered or not), correct answer-or-fallback over all
questions (in scope: answered with the expected entry; out of scope: not answered), out-of-scope rejected, and the
per-question decision time. The baselines' single score threshold is the best one on the dev part. Then the p50/p99
of scrm.faq_match over a synthetic FAQ of --size entries (the demo entries plus generated ones).
"""

from __future__ import annotations

import argparse
import time

from chatbot_data import (
    Bm25,
    CharTfidf,
    Outcome,
    best_threshold,
    intervals,
    load_dev_extra,
    load_eval,
    load_faq,
    percentile,
    synthetic_faq,
    table_row,
)
from chatbot_fit import cross_fit, development

from scrm.faq_match import Index

HEADER = (
    "| method | top-1 in scope | correct answer-or-fallback | out-of-scope rejected | p50 | p99 |\n"
    "|---|---|---|---|---|---|"
)


def run_baseline(model: CharTfidf | Bm25, dev: list, items: list) -> list[Outcome]:
    threshold = best_threshold([(it, *model.ask(it.text)) for it in dev])
    out = []
    for it in items:
        t = time.perf_counter()
        top, score = model.ask(it.text)
        out.append(Outcome(it, top, score >= threshold, (time.perf_counter() - t) * 1000))
    return out


def run_index(index: Index, items: list) -> list[Outcome]:
    out = []
    for it in items:
        t = time.perf_counter()
        m = index.ask(it.text)
        ms = (time.perf_counter() - t) * 1000
        out.append(Outcome(it, m.entry_id, m.kind == "answer", ms))
    return out


def cross_validated() -> list[Outcome]:
    """scrm.faq_match over the development questions (dev part + dev_extra + dev_fresh), each decided by a ranker and an
    accept model fitted without its fold (bench/chatbot_fit.py), at the fitted threshold; no timing."""
    index = Index.build(load_faq())
    items, rows, extra = development(index)
    p, y, _, _, _ = cross_fit(rows, extra)
    decided = {
        id(r[0]): (r[0].expected if yi else "?", pi >= index.threshold) for r, pi, yi in zip(rows, p, y, strict=True)
    }
    return [Outcome(it, *decided.get(id(it), (None, False)), 0.0) for it in items]


def latency_at_scale(size: int, items: list) -> str:
    entries = synthetic_faq(load_faq(), size)
    t = time.perf_counter()
    index = Index.build(entries)
    built = time.perf_counter() - t
    for it in items[:20]:
        index.ask(it.text)  # warm-up
    times, cpu = [], []
    for _ in range(3):
        for it in items:
            t, c = time.perf_counter(), time.thread_time()
            index.ask(it.text)
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
    long_text = "我们公司想了解一下你们的产品价格和私有化部署的方案" * 40
    t = time.perf_counter()
    index.ask(long_text)
    long_ms = (time.perf_counter() - t) * 1000
    times.sort()
    cpu.sort()
    return (
        f"{size} entries ({sum(len(e.questions) for e in entries)} questions): build {built:.2f} s, "
        f"ask p50 {percentile(times, 50):.2f} ms, p99 {percentile(times, 99):.2f} ms, max {times[-1]:.2f} ms "
        f"over {len(times)} asks (CPU time p99 {percentile(cpu, 99):.2f} ms: the wall figure includes other load on "
        f"this machine); a 2,000-character question {long_ms:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="test", choices=["test", "dev", "all"])
    parser.add_argument("--size", type=int, default=5000, help="entries in the synthetic FAQ for the latency figure")
    parser.add_argument("--misses", action="store_true", help="with --part dev: its misses")
    args = parser.parse_args()
    entries = load_faq()
    dev, items = load_eval("dev"), load_eval(args.part)
    n_in = sum(1 for it in items if it.expected)
    print(f"FAQ: {len(entries)} entries; {args.part}: {n_in} in scope, {len(items) - n_in} out of scope\n")
    print(HEADER)
    t = time.perf_counter()
    bm25 = Bm25(entries)
    print(table_row("jieba + BM25 (rank-bm25), best dev threshold", run_baseline(bm25, dev, items)))
    print(table_row("char uni+bigram TF-IDF, best dev threshold", run_baseline(CharTfidf(entries), dev, items)))
    index = Index.build(entries)
    ours = run_index(index, items)
    print(table_row("scrm.faq_match (fitted on dev)", ours))
    print(f"\nscrm.faq_match 95% intervals: {intervals(ours)}")
    print(f"\n(baselines and build took {time.perf_counter() - t:.1f} s)")
    dev_all = load_eval("dev") + load_dev_extra()
    parts = "dev part + dev_extra + dev_fresh"
    print(f"\nDevelopment ({len(dev_all)} questions: {parts}), scrm.faq_match 5-fold out of fold;")
    print("baselines with their best threshold on these same questions (in sample)\n")
    print(HEADER)
    print(table_row("jieba + BM25 (rank-bm25), in-sample threshold", run_baseline(bm25, dev_all, dev_all)))
    print(table_row("char uni+bigram TF-IDF, in-sample threshold", run_baseline(CharTfidf(entries), dev_all, dev_all)))
    cv = cross_validated()
    print(table_row("scrm.faq_match (5-fold cross-validated; no timing)", cv))
    print(f"\nscrm.faq_match 95% intervals (development): {intervals(cv)}")
    if args.misses and args.part != "dev":
        print("\n--misses lists only --part dev: held-out errors are looked at by category, never item by item")
    elif args.misses:
        for o in ours:
            right = (o.answered and o.top == o.item.expected) if o.item.expected else not o.answered
            if not right:
                m = index.ask(o.item.text)
                print(f"  {o.item.text!r}: expected {o.item.expected}, got {m.kind} {m.entry_id} {m.score:.2f}"
                      f" (runner-up {m.runner_up} {m.runner_up_score:.2f})")  # fmt: skip
    print("\n" + latency_at_scale(args.size, items))


if __name__ == "__main__":
    main()

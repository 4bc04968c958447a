"""Where a send worker's CPU goes, by phase, from the cProfile stats of bench/profiled.py (main thread CPU clock).

A phase is the cumulative time of the functions that do it (the same names in the checkouts compared); what nests
inside another phase (render and guards inside the claim, the breaker inside the state write) is taken out of it.
cProfile's own cost inflates every call, so read the shares, and the milliseconds as an upper bound.
"""

from __future__ import annotations

import pstats
from collections import defaultdict
from pathlib import Path

# phase -> (file suffix, function names), ...: cumulative times of the outermost ones (old and new names)
PHASES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "job": (("tasks/send.py", ("run_batch",)),),
    "claim": (("scrm/deliveries.py", ("prepare",)), ("scrm/delivery_pages.py", ("prepare",))),
    "render": (("scrm/message_templates.py", ("render",)),),
    "guards": (("scrm/guards.py", ("check", "history")),),
    "quota": (("tasks/ratelimit.py", ("take",)),),
    "rate limiter": (("tasks/ratelimit.py", ("acquire",)),),
    "http": (("tasks/send.py", ("send_one", "send_mass")),),
    "state write": (("tasks/send.py", ("record", "release", "finish")),),
    "breaker": (("tasks/ratelimit.py", ("observe",)),),
}
SHOWN = ("claim", "render", "guards", "quota", "rate limiter", "http", "state write", "breaker", "rest of the job",
         "RQ and the worker loop")  # fmt: skip


def _cumulative(stats: pstats.Stats) -> tuple[dict[str, float], float]:
    found: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _line, name), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        for phase, places in PHASES.items():
            if any(filename.endswith(suffix) and name in names for suffix, names in places):
                found[phase] += ct
    return found, total


def phases(paths: list[Path]) -> dict[str, float]:
    """CPU seconds by phase, summed over the workers' profiles."""
    out: dict[str, float] = defaultdict(float)
    for path in paths:
        if not path.exists():
            continue
        found, total = _cumulative(pstats.Stats(str(path)))
        inner = {p: found.get(p, 0.0) for p in PHASES}
        inner["claim"] -= inner["render"] + inner["guards"]
        inner["state write"] -= inner["breaker"]
        within = sum(v for p, v in inner.items() if p != "job")
        inner["rest of the job"] = inner.pop("job") - within
        inner["RQ and the worker loop"] = total - within - inner["rest of the job"]
        for phase, seconds in inner.items():
            out[phase] += seconds
        out["total"] += total
    return dict(out)


def print_phases(name: str, seconds: dict[str, float], sent: int) -> None:
    total = seconds.get("total", 0.0) or 1e-9
    print(f"\nworker CPU by phase, {name} (cProfile, {sent:,} messages; profiled ms per message, share)")
    for phase in SHOWN:
        value = seconds.get(phase, 0.0)
        print(f"  {phase:28}{value / max(sent, 1) * 1000:8.3f} ms {value / total:7.1%}")
    print(f"  {'total':28}{total / max(sent, 1) * 1000:8.3f} ms")

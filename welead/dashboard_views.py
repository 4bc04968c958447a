"""The dashboard's report pages: each reads its report (welead.dashboard.report, scoped to the viewer) and draws it
with welead.svg. Every number drawn is the report's own, so the page and the API cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import render_template

from welead import svg

Fetch = Callable[..., tuple[dict[str, Any], Any]]
STATE_ORDER = ("delivered", "sent", "sending", "queued", "failed", "blocked", "error", "unknown", "skipped",
               "cancelled")  # fmt: skip


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def funnel(fetch: Fetch) -> str:
    data, win = fetch("funnel")
    chart = svg.hbars([(r["stage"], r["reached"]) for r in data["rows"]], "funnel-chart")
    return render_template("dashboard/funnel.html", data=data, win=win, chart=chart, pct=_pct)


def sources(fetch: Fetch) -> str:
    data, win = fetch("sources")
    labels = [s["bucket"] for s in data["series"]]
    series = [("gained", [s["gained"] for s in data["series"]]), ("lost", [s["lost"] for s in data["series"]])]
    chart = svg.columns(labels, series, "sources-chart")
    kinds = svg.hbars([(k["kind"], k["gained"]) for k in data["by_kind"]], "kinds-chart", fill=svg.color(0))
    return render_template("dashboard/sources.html", data=data, win=win, chart=chart, kinds=kinds,
                           legend=svg.legend(["gained", "lost"]))  # fmt: skip


def deliveries(fetch: Fetch) -> str:
    data, win = fetch("deliveries")
    seen = {s for t in data["by_template"] for s in t["states"]}
    states = [s for s in STATE_ORDER if s in seen] + sorted(seen - set(STATE_ORDER))
    chart = svg.stacked([(t["template"], t["states"]) for t in data["by_template"]], states, "deliveries-chart")
    return render_template("dashboard/deliveries.html", data=data, win=win, chart=chart, states=states,
                           legend=svg.legend(states), pct=_pct)  # fmt: skip


def journeys(fetch: Fetch) -> str:
    data, win = fetch("journeys")
    charts = {
        (j["journey"], j["version"]): svg.hbars([(s["label"], s["entered"]) for s in j["steps"]], chart_id(j))
        for j in data["journeys"]
    }
    return render_template("dashboard/journeys.html", data=data, win=win, charts=charts, pct=_pct)


def chart_id(journey: dict[str, Any]) -> str:
    return f"journey-{journey['journey']}-v{journey['version']}"


def reps(fetch: Fetch) -> str:
    data, win = fetch("reps")
    chart = svg.hbars([(r["name"], r["leads"]) for r in data["rows"]], "reps-chart")
    return render_template("dashboard/reps.html", data=data, win=win, chart=chart)


def tags(fetch: Fetch) -> str:
    data, win = fetch("tags")
    chart = svg.hbars([(r["tag"], r["followers"]) for r in data["rows"]], "tags-chart", fill=svg.color(4))
    return render_template("dashboard/tags.html", data=data, win=win, chart=chart)


def overview(fetch: Fetch) -> str:
    """The window's headline numbers, each linking to its page."""
    sources_, win = fetch("sources")
    cards = {"sources": sources_["totals"], "funnel": fetch("funnel")[0], "deliveries": fetch("deliveries")[0],
             "reps": fetch("reps")[0]}  # fmt: skip
    return render_template("dashboard/overview.html", cards=cards, win=win)


PAGES: dict[str, Callable[[Fetch], str]] = {"funnel": funnel, "sources": sources, "deliveries": deliveries,
                                            "journeys": journeys, "reps": reps, "tags": tags}  # fmt: skip

"""Stages and thresholds: forward-only moves, demotion only when enabled (with margin), and threshold crossings
that fire once per upward crossing and re-arm only after the score fell `margin` below (property-tested).
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from scrm.stages import Stage, Step, crossings, index, path, target

ORDER = [Stage("new", 0), Stage("engaged", 10), Stage("mql", 40), Stage("sql", 80), Stage("customer", None)]
NAMES = [s.name for s in ORDER]
scores = st.floats(min_value=-50, max_value=200, allow_nan=False)


def test_forward_moves():
    assert target(ORDER, "new", 45, 5, demote=False) == "mql"
    assert target(ORDER, "mql", 12, 5, demote=False) == "mql"
    assert target(ORDER, "customer", 500, 5, demote=False) == "customer"  # rule-set stages are not overtaken
    assert target(ORDER, "unknown", 0, 5, demote=False) == "new"


def test_demotion_uses_the_margin():
    assert target(ORDER, "mql", 36, 5, demote=True) == "mql"  # within the margin
    assert target(ORDER, "mql", 34, 5, demote=True) == "engaged"
    assert target(ORDER, "mql", 6, 5, demote=True) == "engaged"  # engaged is kept down to 10 - 5
    assert target(ORDER, "mql", 4, 5, demote=True) == "new"
    assert target(ORDER, "customer", 0, 5, demote=True) == "customer"


def test_path_passes_each_threshold_stage():
    assert path(ORDER, "new", "sql") == [Step("new", "engaged", "up"), Step("engaged", "mql", "up"),
                                         Step("mql", "sql", "up")]  # fmt: skip
    assert path(ORDER, "sql", "engaged") == [Step("sql", "engaged", "down")]


@given(current=st.sampled_from(NAMES), score=scores, margin=st.floats(0, 20))
def test_without_demote_never_backward(current, score, margin):
    assert index(ORDER, target(ORDER, current, score, margin, demote=False)) >= index(ORDER, current)


@given(current=st.sampled_from(NAMES), score=scores, margin=st.floats(0, 20))
def test_with_demote_a_stage_is_kept_within_its_margin(current, score, margin):
    new = target(ORDER, current, score, margin, demote=True)
    threshold = ORDER[index(ORDER, current)].at
    if index(ORDER, new) < index(ORDER, current):
        assert threshold is not None and score < threshold - margin
    if threshold is not None and score >= threshold - margin:
        assert index(ORDER, new) >= index(ORDER, current)


@given(
    path_=st.lists(scores, min_size=2, max_size=60),
    threshold=st.floats(min_value=1, max_value=150),
    margin=st.floats(min_value=0, max_value=30),
)
def test_threshold_fires_once_per_crossing_and_rearms_only_below_the_margin(path_, threshold, margin):
    fired: set[float] = set()
    fires: list[int] = []
    for i, (pre, post) in enumerate(pairwise(path_)):
        fire, rearm = crossings(pre, post, {threshold: margin}, fired)
        fired -= set(rearm)
        fired |= set(fire)
        if fire:
            assert pre < threshold <= post  # only an upward crossing fires
            fires.append(i)
        elif pre < threshold <= post:
            assert threshold in fired  # a crossing is silent only while disarmed
    for a, b in pairwise(fires):  # between two alerts, the score went margin below
        assert min(path_[a + 1 : b + 1]) < threshold - margin


def test_hovering_does_not_alert_twice():
    fired: set[float] = set()
    alerts = 0
    for pre, post in [(48, 51), (51, 49), (49, 50.5), (50.5, 47), (47, 52)]:
        fire, rearm = crossings(pre, post, {50.0: 5.0}, fired)
        fired = (fired - set(rearm)) | set(fire)
        alerts += len(fire)
    assert alerts == 1
    fire, rearm = crossings(44, 60, {50.0: 5.0}, fired)  # cooled 6 below: re-armed, and fires again
    assert fire == [50.0] and rearm == [50.0]

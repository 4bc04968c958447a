"""Step paths: where a run is in a journey's tree of steps. "0" is the first step; "2.yes.0" the first step of the
yes branch of step 2. After the last step of a branch comes the step after its `if`.
"""

from __future__ import annotations

from collections.abc import Iterator

from scrm.playbook.grammar import Journey, Step

FIRST = "0"


def _parse(path: str) -> list[tuple[str, int]]:
    """ "2.yes.0" → [("", 2), ("yes", 0)]."""
    parts = path.split(".")
    out = [("", int(parts[0]))]
    for i in range(1, len(parts), 2):
        out.append((parts[i], int(parts[i + 1])))
    return out


def _branch(step: Step, name: str) -> list[Step] | None:
    return step.yes if name == "yes" else step.no if name == "no" else None


def at(journey: Journey, path: str | None) -> Step | None:
    """The step at `path`, or None when the journey has none there (a path of another version)."""
    if not path:
        return None
    try:
        parsed = _parse(path)
    except (ValueError, IndexError):
        return None
    steps: list[Step] | None = journey.steps
    found: Step | None = None
    for name, index in parsed:
        if found is not None:
            steps = _branch(found, name)
        if steps is None or not 0 <= index < len(steps):
            return None
        found = steps[index]
    return found


def after(journey: Journey, path: str) -> str | None:
    """The path of the step that follows `path` (leaving finished branches); None at the end of the journey."""
    parts = path.split(".")
    while parts:
        parts[-1] = str(int(parts[-1]) + 1)
        candidate = ".".join(parts)
        if at(journey, candidate) is not None:
            return candidate
        parts = parts[:-2]  # the branch is done: continue after its `if`
    return None


def branch(path: str, way: str) -> str:
    """The first step of an `if` step's yes/no branch."""
    return f"{path}.{way}.0"


def paths(steps: list[Step], prefix: str = "") -> Iterator[tuple[str, Step]]:
    """Every step with its path, in order (a branch's steps right after its `if`)."""
    for i, step in enumerate(steps):
        path = f"{prefix}{i}"
        yield path, step
        for way in ("yes", "no"):
            inner = getattr(step, way)
            if inner:
                yield from paths(inner, f"{path}.{way}.")


def kind(step: Step) -> str:
    if step.wait is not None:
        return "wait"
    return "if" if step.yes is not None or step.no is not None else "do"

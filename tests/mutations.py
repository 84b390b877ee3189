"""Mutated real-shaped payloads for property tests (hypothesis): keys dropped and values of the wrong type, as
buggy or older servers (or anyone holding a webhook secret) send them — `"chat": -1`, `"from": []`,
`"message_id": {}`, a float where a string was."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

#: Values of the wrong type. No positive ids and no plausible strings: those would be well-formed, and two
#: payloads sharing one would rightly be the same update.
WRONG_VALUES: tuple[Any, ...] = (-1, 0, 1.5, -2.75, "", {}, [], None, False, [{}], {"id": None}, 10**30)


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every key and index in a JSON value, parents before children."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from paths(child, (*prefix, index))


def _parent(value: Any, path: Path) -> Any:
    for step in path[:-1]:
        value = value[step]
    return value


def _swapped(current: Any) -> Any:
    """The same value as another type: a float for a string, a string for a number, a list for a dict."""
    if isinstance(current, str):
        return float(len(current)) + 0.5
    if isinstance(current, bool):
        return "yes" if current else ""
    if isinstance(current, int | float):
        return str(current)
    if isinstance(current, dict):
        return list(current.values())
    if isinstance(current, list):
        return {str(index): item for index, item in enumerate(current)}
    return 1.5


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_mutations: int = 3) -> Any:
    """`base` with one to `max_mutations` mutations, each at a path of the payload as it is by then."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        found = list(paths(value))
        if not found:
            break
        path = draw(st.sampled_from(found))
        parent = _parent(value, path)
        how = draw(st.sampled_from(("drop", "wrong", "swap")))
        if how == "drop":
            del parent[path[-1]]
        elif how == "wrong":
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(WRONG_VALUES)))
        else:
            parent[path[-1]] = _swapped(parent[path[-1]])
    return value


def at(value: Any, *path: str | int) -> Any:
    """The value at `path`, or None when any step is missing or of another type."""
    for step in path:
        if isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        elif isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value

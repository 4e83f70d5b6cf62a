"""pydantic's ValidationError -> the one line a user reads.

Profiles, job specs and steps are pydantic models; each names its source
differently ("profile F:", "job spec F:", "step 2 (gaussian):") but says the
same things the same way: which key, the value received, and what is allowed
(the valid keys for an unknown one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One error of a model: where (``loc``, list indices left out), what kind, the value."""

    loc: tuple[str, ...]
    kind: str  # "unknown" key, "missing" key, "pattern" mismatch, or "invalid"
    value: Any
    message: str  # pydantic's own words, without its "Value error, " prefix

    @property
    def key(self) -> str:
        return ".".join(self.loc)


_KINDS = {"extra_forbidden": "unknown", "missing": "missing",
          "string_pattern_mismatch": "pattern"}


def problems(err: ValidationError, depth: int | None = None) -> list[Problem]:
    """Every error of ``err``, one per key (a union reports once per member).

    ``depth``: how many parts of a location name the key, for a flat model whose
    locations go on with pydantic's names of union members.
    """
    found: list[Problem] = []
    seen: set[tuple[str, ...]] = set()
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"] if not isinstance(p, int))[:depth]
        if loc in seen and loc:
            continue
        seen.add(loc)
        message = str(e.get("ctx", {}).get("error", e["msg"])) if not loc else e["msg"]
        found.append(Problem(loc, _KINDS.get(e["type"], "invalid"), e.get("input"),
                             message.removeprefix("Value error, ")))
    return found


def explain(
    problem: Problem, *, valid_keys: Callable[[tuple[str, ...]], Sequence[str]],
    forms: Mapping[str, str] | None = None, show: Callable[[Any], str] = repr,
) -> str:
    """``problem`` in the words every configuration error uses.

    ``key must be FORM, got VALUE`` where ``forms`` says what a valid value of the key
    looks like, else ``key = VALUE: pydantic's message``; ``unknown key 'k'; valid keys:
    ...`` with ``valid_keys(parent loc)``; ``missing required key 'k'``. ``show``
    writes a value as the user wrote it (repr, or TOML).
    """
    forms = forms or {}
    leaf = problem.loc[-1] if problem.loc else ""
    if problem.kind == "unknown":
        valid = ", ".join(valid_keys(problem.loc[:-1]))
        return f"unknown key {problem.key!r}; valid keys: {valid}"
    if problem.kind == "missing":
        return f"missing required key {problem.key!r}" + (
            f" ({forms[leaf]})" if leaf in forms else "")
    if not problem.loc:  # a whole-model check: its message is complete
        return problem.message
    if isinstance(problem.value, Mapping):  # a whole table's check: its message is complete
        return f"[{problem.key}]: {problem.message}"
    if leaf in forms:
        return f"{problem.key} must be {forms[leaf]}, got {show(problem.value)}"
    return f"{problem.key} = {show(problem.value)}: {problem.message}"

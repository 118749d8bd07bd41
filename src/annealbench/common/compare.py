"""The question a suite declares before its runs: which references, and what difference matters.

A suite's `compare:` section, the `compare.json` the runner writes beside the store, and the
report's `--reference` / `--margin` / `--margin-abs` options all become one `Comparison`:

    compare:
      references: [adamw[window=cosine], muphi[window=cosine]]
      margin: {relative: 0.02}          # 2 % of the reference's median final value
      per_task:
        quadratic: {absolute: 1.0e-3}   # in the metric's units, on every variant of the task
        "diabetes[max_steps=800]": {relative: 0.05}   # on this variant only

A `per_task` key is either a task's full label, as the store records it (name and overrides), or
its bare name, which covers every variant of the task (its budgets, say); a full label wins over
the bare name.

Every configuration is compared with every reference; a reference is compared with the
references declared before it (never with itself), so each pair appears once.

A design that pairs its arms one to one (the seed paper's par-cor numerator against the
unit numerator at each filter zero γ) lists the pairs instead of `references`:

    compare:
      pairs:                            # [configuration, its reference], each pair one row
        - [muphi[numerator=parcor-c5b0935,gamma=0.31], muphi[numerator=one,gamma=0.31]]
      margin: {relative: 0.02}

Only the listed pairs are compared; the references are the pairs' second members, in order.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
MARGIN_KINDS = ("relative", "absolute")
COMPARE_KEYS = ("references", "pairs", "margin", "per_task")
# A relative margin is a fraction of the reference's value: 1 or more would call any difference
# of 100 % "equivalent", the slip of writing percent for a fraction. Above WIDE_RELATIVE it is
# allowed but logged: few readers would call a 20 % difference negligible.
MAX_RELATIVE = 1.0
WIDE_RELATIVE = 0.2
_WARNED_WIDE: set[float] = set()


class CompareError(ValueError):
    """A bad comparison: names the key, what was wrong and what is allowed."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class Margin:
    """The equivalence margin δ > 0: `value` in metric units (absolute) or as a fraction of
    |median final value of the reference| on the task (relative)."""

    kind: str  # "relative" or "absolute"
    value: float  # fraction (relative) or metric units (absolute), > 0

    def __post_init__(self) -> None:
        if self.kind not in MARGIN_KINDS:
            raise CompareError("margin", f"kind must be one of {list(MARGIN_KINDS)}, got {self.kind!r}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) \
                or not math.isfinite(self.value) or self.value <= 0:
            raise CompareError(f"margin.{self.kind}", f"must be a finite number > 0, got {self.value!r}")
        if self.kind == "relative" and self.value >= MAX_RELATIVE:
            raise CompareError("margin.relative",
                               f"is a fraction of the reference's value and must be < {MAX_RELATIVE:g}, got "
                               f"{self.value!r} (= {100 * self.value:g} %); for {self.value:g} % write "
                               f"{self.value / 100:g}")
        if self.kind == "relative" and self.value > WIDE_RELATIVE and self.value not in _WARNED_WIDE:
            _WARNED_WIDE.add(self.value)  # once per value and process: a suite builds its margins often
            log.warning("relative margin %g allows a difference of %g %% of the reference's value to "
                        "count as equivalent", self.value, 100 * self.value)

    def resolve(self, reference_median: float) -> float:
        """δ in metric units; NaN when relative and the reference has no completed run."""
        if self.kind == "absolute":
            return float(self.value)
        return float(self.value * abs(reference_median)) if math.isfinite(reference_median) else math.nan

    def describe(self) -> str:
        if self.kind == "absolute":
            return f"±{self.value:g} (absolute)"
        return f"±{100 * self.value:g}% of the reference's median final value"

    def to_dict(self) -> dict[str, float]:
        return {self.kind: float(self.value)}


@dataclass(frozen=True)
class Comparison:
    """References and margins; `origin` says where they were declared."""

    references: tuple[str, ...]
    margin: Margin
    per_task: tuple[tuple[str, Margin], ...] = ()  # sorted by task
    origin: str = "default"
    explicit: tuple[tuple[str, str], ...] = ()  # (config, reference) pairs: only these are compared

    def __post_init__(self) -> None:
        if not self.references:
            raise CompareError("references", "must name at least one configuration label")
        if len(set(self.references)) != len(self.references):
            raise CompareError("references", f"repeats a configuration: {list(self.references)}")
        if self.explicit and set(self.references) != {ref for _, ref in self.explicit}:
            raise CompareError("references", f"{list(self.references)} must be the references of the "
                                             f"pairs {[list(p) for p in self.explicit]}")

    def margin_for(self, task: str) -> Margin:
        """The margin on `task` (a store label): its own entry, else its bare name's, else the
        suite's margin."""
        declared = dict(self.per_task)
        return declared.get(task, declared.get(task.split("[", 1)[0], self.margin))

    def pairs(self, configs: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
        """(config, reference) for every run configuration against every run reference; a
        reference meets only the references declared before it. With explicit pairs: those
        whose two configurations were both run."""
        if self.explicit:
            return [(c, r) for c, r in self.explicit if c in configs and r in configs]
        present = [r for r in self.references if r in configs]
        out = []
        for j, ref in enumerate(present):
            out += [(c, ref) for c in configs if c not in present]
            out += [(earlier, ref) for earlier in present[j + 1:]]
        return out

    def describe(self) -> str:
        compared = (f"{len(self.explicit)} declared pairs against references {', '.join(self.references)}"
                    if self.explicit else f"references {', '.join(self.references)}")
        text = f"{compared}; equivalence margin {self.margin.describe()}"
        if self.per_task:
            text += "; on " + ", ".join(f"{t} {m.describe()}" for t, m in self.per_task)
        return f"{text} (declared by the {self.origin})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = ({"pairs": [list(p) for p in self.explicit]} if self.explicit
                               else {"references": list(self.references)})
        out["margin"] = self.margin.to_dict()
        if self.per_task:
            out["per_task"] = {t: m.to_dict() for t, m in self.per_task}
        return out


def _mapping(raw: Any, key: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(raw, dict):
        raise CompareError(key, f"must be a mapping with keys {list(allowed)}, got {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise CompareError(key, f"unknown key(s) {unknown}; allowed: {list(allowed)}")
    return raw


def margin_from_dict(raw: Any, key: str = "margin") -> Margin:
    """`{relative: FRACTION}` or `{absolute: VALUE}`, exactly one."""
    doc = _mapping(raw, key, MARGIN_KINDS)
    if len(doc) != 1:
        raise CompareError(key, f"give exactly one of {list(MARGIN_KINDS)}, got {sorted(doc) or 'none'}")
    (kind, value), = doc.items()
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    try:
        return Margin(kind, value)
    except CompareError as err:
        raise CompareError(f"{key}.{kind}", err.problem) from None


def comparison_from_dict(raw: Any, origin: str) -> Comparison:
    """Check a `compare:` mapping key by key (the inverse of `Comparison.to_dict`)."""
    doc = _mapping(raw, "compare", COMPARE_KEYS)
    if "margin" not in doc:
        raise CompareError("compare", "missing key 'margin'")
    if ("references" in doc) == ("pairs" in doc):
        raise CompareError("compare", "give exactly one of 'references' (every configuration against each) "
                                      "and 'pairs' (the listed [configuration, reference] pairs only)")
    explicit = _pairs(doc["pairs"]) if "pairs" in doc else ()
    refs = list(dict.fromkeys(ref for _, ref in explicit)) if explicit else doc["references"]
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
        raise CompareError("compare.references", f"must be a non-empty list of configuration labels, got {refs!r}")
    per_task = doc.get("per_task") or {}
    if not isinstance(per_task, dict) or not all(isinstance(t, str) for t in per_task):
        raise CompareError("compare.per_task", f"must map task names or labels to margins, got {per_task!r}")
    return Comparison(references=tuple(refs), margin=margin_from_dict(doc["margin"], "compare.margin"),
                      per_task=tuple(sorted((t, margin_from_dict(m, f"compare.per_task.{t}"))
                                            for t, m in per_task.items())),
                      origin=origin, explicit=explicit)


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    """`pairs:` as (config, reference) tuples: each a list of two different labels, none twice."""
    if not isinstance(raw, list) or not raw:
        raise CompareError("compare.pairs", f"must be a non-empty list of [configuration, reference] "
                                            f"pairs, got {raw!r}")
    out = []
    for j, pair in enumerate(raw):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) and x for x in pair)):
            raise CompareError(f"compare.pairs[{j}]", f"must be [configuration, reference] (two labels), "
                                                      f"got {pair!r}")
        if pair[0] == pair[1]:
            raise CompareError(f"compare.pairs[{j}]", f"compares {pair[0]!r} with itself")
        out.append((pair[0], pair[1]))
    repeated = [p for p in dict.fromkeys(out) if out.count(p) > 1 or (p[1], p[0]) in out]
    if repeated:
        raise CompareError("compare.pairs", f"lists a pair twice (in either order): {list(repeated[0])}")
    return tuple(out)


DEFAULT = Comparison(references=("adamw[window=cosine]",), margin=Margin("relative", 0.02),
                     origin="analysis default (no compare section was declared)")

"""Suite files: YAML on disk → frozen, typed dataclasses, checked key by key.

A suite names tasks, optimizer configurations with a learning-rate grid each, tuning seeds and
evaluation seeds. Stage `tune` runs every (task, configuration, lr, tuning seed); stage `eval`
reruns the selected lr on the evaluation seeds, which must be disjoint from the tuning seeds.

Learning rates are the radius constant μ of docs/theory.md section 2 for `muphi` (μ[t] = μ·Ϝ[t]) and the
peak learning rate for the other optimizers.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from annealbench.runner.errors import SuiteError
from annealbench.common.compare import Comparison, CompareError, comparison_from_dict
from annealbench.common.plugins import PluginError, check_reference, is_reference
from annealbench.common.store_schema import config_label, task_label

Scalar = bool | int | float | str
SeedBatch = int | str  # seeds per run group: an integer ≥ 1 (1: one seed per run) or "auto"
PRESET_NAMES = ("smoke", "quick", "paper")
# Task settings that choose how fast a device runs a task, not what is trained (annealbench.tasks.config).
DEVICE_SETTINGS = ("precision", "compile_model", "channels_last")
SELECTION_STATISTICS = ("median", "mean")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The largest seed number: the store's `seed` column is a 64-bit integer (annealbench.common.store_schema).
MAX_SEED = 2**63 - 1
# The most runs a suite may plan unless the caller raises it (`annealbench run --max-runs`): far above
# any shipped suite (quick: 1,980), far below what a typo such as `count: 1000000000` asks for.
DEFAULT_MAX_RUNS = 100_000
_SHOWN = reprlib.Repr()
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict = 60, 60, 2, 4, 4


def shown(raw: Any) -> str:
    """`repr(raw)` cut to a bounded length (a YAML alias can nest a value exponentially)."""
    return _SHOWN.repr(raw)


@dataclass(frozen=True)
class TaskEntry:
    """One task of a suite: registry name, preset and task overrides (sorted by key)."""

    name: str
    preset: str
    overrides: tuple[tuple[str, Scalar], ...] = ()
    eval_seeds: tuple[int, ...] = ()  # this task's evaluation seeds; empty: the suite's


@dataclass(frozen=True)
class OptimizerEntry:
    """One optimizer configuration: registry name, hyperparameters without lr, the lr grid."""

    name: str
    hparams: tuple[tuple[str, Scalar], ...]
    lr_grid: tuple[float, ...]  # μ (or peak lr) values, > 0, ascending


@dataclass(frozen=True)
class Selection:
    """How stage `tune` picks one lr per (task, configuration).

    The lr with the best `statistic` over the tuning seeds of the last logged value of `metric`,
    in the direction the tasks declare for it (annealbench.runner.suite.selection); a diverged or failed run is the
    worst outcome; ties go to the smaller lr.
    """

    metric: str = "val/loss"
    statistic: str = "median"

    def describe(self, better: str = "lower") -> str:
        best = "lowest" if better == "lower" else "highest"
        return (f"{best} {self.statistic} over tuning seeds of the final {self.metric} ({better} is "
                f"better); diverged or failed runs count as the worst outcome; ties go to the smaller lr")


@dataclass(frozen=True)
class Suite:
    """A whole suite, as loaded from `source`."""

    name: str
    source: str
    tasks: tuple[TaskEntry, ...]
    optimizers: tuple[OptimizerEntry, ...]
    tune_seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    selection: Selection = Selection()
    checkpoints: bool = False  # a Lightning checkpoint after each validation (resume from it)
    description: str = ""
    compare: Comparison | None = None  # the question declared before the runs (`compare:`)
    seed_batch: SeedBatch = "auto"  # seeds trained together as one run group (annealbench.runner.launch.jobs)

    def eval_seeds_of(self, task: TaskEntry) -> tuple[int, ...]:
        """The task's own evaluation seeds (`tasks[i].seeds.eval`), else the suite's."""
        return task.eval_seeds or self.eval_seeds

    def at_preset(self, preset: str) -> Suite:
        """The same design at another scale (`annealbench run SUITE --preset smoke`): every task at
        `preset`, keeping the overrides that say *what* is trained (strings and booleans, e.g.
        `model: vit`, `corpus: shakespeare-char`, `download: true`) and dropping the numeric ones
        (sizes, budgets, cadence) and the device settings (`DEVICE_SETTINGS`), which the preset
        sets; optimizers, seeds, selection and the question stay. The suite is named
        `NAME-PRESET`, so its runs and results folder are its own."""
        if preset not in PRESET_NAMES:
            raise SuiteError(self.source, "preset", f"must be one of {list(PRESET_NAMES)}, got {shown(preset)}")
        tasks = tuple(dataclasses.replace(t, preset=preset, overrides=tuple(
            (k, v) for k, v in t.overrides if isinstance(v, (bool, str)) and k not in DEVICE_SETTINGS))
            for t in self.tasks)
        if len(set(tasks)) != len(tasks):
            raise SuiteError(self.source, "tasks", f"two tasks become the same at preset {preset!r}: "
                                                   "they differ only in numeric overrides")
        return dataclasses.replace(self, name=f"{self.name}-{preset}", tasks=tasks)


_TOP_KEYS = {"name", "description", "preset", "tasks", "optimizers", "seeds", "selection",
             "checkpoints", "compare", "seed_batch"}


def shipped_suites() -> dict[str, Path]:
    """The suites shipped in `src/annealbench/suites/`, by name."""
    folder = Path(str(resources.files("annealbench") / "suites"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_suite_path(name_or_path: str) -> Path:
    """A shipped suite's name (`quick`) or a path to a YAML file."""
    shipped = shipped_suites()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    raise SuiteError(name_or_path, "suite",
                     f"not a shipped suite nor a YAML file; shipped suites: {sorted(shipped)}")


def load_suite(name_or_path: str | Path, *, max_runs: int = DEFAULT_MAX_RUNS) -> Suite:
    """Read and check a suite file (schema only; `annealbench.runner.suite.validate` checks tasks and optimizers)."""
    path = resolve_suite_path(str(name_or_path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SuiteError(str(path), "file", f"cannot be read: {err}") from err
    return parse_suite(text, source=str(path), max_runs=max_runs)


def parse_suite(text: str, *, source: str, max_runs: int = DEFAULT_MAX_RUNS) -> Suite:
    """Parse suite YAML text; every problem raises `SuiteError` naming `source` and the key.

    The number of runs the suite plans is counted from the declared sizes before any seed list
    or lr grid is built, and a suite planning more than `max_runs` is refused.
    """
    try:
        raw = yaml.safe_load(text)
        _check_expansion(raw, source)
    except yaml.YAMLError as err:
        raise SuiteError(source, "file", f"is not valid YAML: {err}") from err
    except RecursionError:
        raise SuiteError(source, "file", "nests too deeply to be a suite") from None
    doc = _mapping(raw, source, "file", allowed=_TOP_KEYS, required={"name", "tasks",
                                                                     "optimizers", "seeds"})
    check_plan_size(doc, source, max_runs)
    name = _identifier(doc["name"], source, "name")
    default_preset = _preset(doc.get("preset", "quick"), source, "preset")
    optimizers = _optimizers(doc["optimizers"], source)  # small: checked before any seed list
    tune, evals = _seeds(doc["seeds"], source)
    tasks = _tasks(doc["tasks"], source, default_preset, tune)
    if not tune and any(len(o.lr_grid) > 1 for o in optimizers):
        raise SuiteError(source, "seeds.tune",
                         "is empty but some lr grid has several values; give ≥ 1 tuning seed")
    selection = _selection(doc.get("selection", {}), source)
    checkpoints = doc.get("checkpoints", False)
    if not isinstance(checkpoints, bool):
        raise SuiteError(source, "checkpoints", f"must be true or false, got {shown(checkpoints)}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise SuiteError(source, "description", f"must be a string, got {shown(description)}")
    compare = _compare(doc["compare"], source, tasks, optimizers) if "compare" in doc else None
    try:
        seed_batch = parse_seed_batch(doc.get("seed_batch", "auto"))
    except ValueError as err:
        raise SuiteError(source, "seed_batch", str(err)) from err
    return Suite(name=name, source=source, tasks=tasks, optimizers=optimizers, tune_seeds=tune,
                 eval_seeds=evals, selection=selection, checkpoints=checkpoints,
                 description=description, compare=compare, seed_batch=seed_batch)


def parse_seed_batch(raw: Any) -> SeedBatch:
    """`auto` or an integer ≥ 1 (digits in a string, as on a command line, are accepted)."""
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if raw == "auto" or (isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1):
        return raw
    raise ValueError(f"must be 'auto' or an integer ≥ 1 (1: one seed per run), got {shown(raw)}")


def _mapping(raw: Any, source: str, key: str, *, allowed: set[str],
             required: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SuiteError(source, key, f"must be a mapping with keys {sorted(allowed)}, "
                                      f"got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise SuiteError(source, key, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(raw))
    if missing:
        raise SuiteError(source, key, f"missing key(s) {missing}")
    return raw


def _identifier(raw: Any, source: str, key: str) -> str:
    if not isinstance(raw, str) or not _NAME.match(raw):
        raise SuiteError(source, key, f"must be a name of letters, digits, '_', '.', '-', "
                                      f"got {shown(raw)}")
    return raw


def _registry_name(raw: Any, source: str, key: str) -> str:
    """A task's or an optimizer's name: a registry name (built-in or entry-point plug-in), or a
    reference `module:Name` to a registry entry (`annealbench.common.plugins`; imported by `annealbench.runner.suite.validate`)."""
    if is_reference(raw):
        try:
            check_reference(raw)
        except PluginError as err:
            raise SuiteError(source, key, str(err)) from None
        return raw
    if not isinstance(raw, str) or not _NAME.match(raw):
        raise SuiteError(source, key, f"must be a registry name of letters, digits, '_', '.', '-', "
                                      f"or a reference module:Name, got {shown(raw)}")
    return raw


def _preset(raw: Any, source: str, key: str) -> str:
    if raw not in PRESET_NAMES:
        raise SuiteError(source, key, f"must be one of {list(PRESET_NAMES)}, got {shown(raw)}")
    return raw


def _int(raw: Any, source: str, key: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum \
            or (maximum is not None and raw > maximum):
        allowed = f"from {minimum} to {maximum}" if maximum is not None else f"≥ {minimum}"
        raise SuiteError(source, key, f"must be an integer {allowed}, got {shown(raw)}")
    return raw


def _positive_float(raw: Any, source: str, key: str) -> float:
    """A finite float > 0; numeric strings such as YAML's `1e-3` are accepted."""
    value = _number(raw)
    if value is None or not math.isfinite(value) or value <= 0:
        raise SuiteError(source, key, f"must be a finite number > 0, got {shown(raw)}")
    return value


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str) and _NUMBER.match(raw.strip()):
        return float(raw)
    return None


def _scalar(raw: Any, source: str, key: str) -> Scalar:
    """A hyperparameter value: bool, int, float (numeric strings become floats) or string."""
    if isinstance(raw, float) and not math.isfinite(raw):
        raise SuiteError(source, key, f"must be finite, got {shown(raw)}")
    if isinstance(raw, (bool, int, float)):
        return raw
    if isinstance(raw, str):
        number = _number(raw)
        return raw if number is None else number
    raise SuiteError(source, key, f"must be a number, boolean or string, got {shown(raw)}")


def _scalars(raw: Any, source: str, key: str) -> tuple[tuple[str, Scalar], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise SuiteError(source, key, f"must be a mapping of name: value, got {shown(raw)}")
    items = []
    for k, v in raw.items():
        if not isinstance(k, str) or not _NAME.match(k):
            raise SuiteError(source, key, f"keys must be names, got {shown(k)}")
        items.append((k, _scalar(v, source, f"{key}.{k}")))
    return tuple(sorted(items))


def _tasks(raw: Any, source: str, default_preset: str, tune: tuple[int, ...]) -> tuple[TaskEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise SuiteError(source, "tasks", f"must be a non-empty list, got {shown(raw)}")
    entries = []
    for i, item in enumerate(raw):
        key = f"tasks[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        doc = _mapping(item, source, key, allowed={"name", "preset", "overrides", "seeds"},
                       required={"name"})
        entries.append(TaskEntry(
            name=_registry_name(doc["name"], source, f"{key}.name"),
            preset=_preset(doc.get("preset", default_preset), source, f"{key}.preset"),
            overrides=_scalars(doc.get("overrides"), source, f"{key}.overrides"),
            eval_seeds=_task_seeds(doc["seeds"], source, f"{key}.seeds", tune) if "seeds" in doc else ()))
    if len(set(entries)) != len(entries):
        raise SuiteError(source, "tasks", "lists the same task (name, preset, overrides) twice")
    return tuple(entries)


def _optimizers(raw: Any, source: str) -> tuple[OptimizerEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise SuiteError(source, "optimizers", f"must be a non-empty list, got {shown(raw)}")
    entries = []
    for i, item in enumerate(raw):
        key = f"optimizers[{i}]"
        doc = _mapping(item, source, key, allowed={"name", "hparams", "lr"},
                       required={"name", "lr"})
        hparams = _scalars(doc.get("hparams"), source, f"{key}.hparams")
        if any(k == "lr" for k, _ in hparams):
            raise SuiteError(source, f"{key}.hparams.lr", "the learning rate belongs in `lr` "
                                                          "(a list or {low, high, num})")
        entries.append(OptimizerEntry(name=_registry_name(doc["name"], source, f"{key}.name"),
                                      hparams=hparams,
                                      lr_grid=_lr_grid(doc["lr"], source, f"{key}.lr")))
    return tuple(entries)


def _lr_grid(raw: Any, source: str, key: str) -> tuple[float, ...]:
    """A list of values, or a log grid `{low, high, num}` (num values from low to high)."""
    if isinstance(raw, dict):
        doc = _mapping(raw, source, key, allowed={"low", "high", "num"},
                       required={"low", "high", "num"})
        low = _positive_float(doc["low"], source, f"{key}.low")
        high = _positive_float(doc["high"], source, f"{key}.high")
        num = _int(doc["num"], source, f"{key}.num", minimum=1)
        if high < low or (num == 1 and high != low):
            raise SuiteError(source, key, f"needs low ≤ high (and low = high when num = 1), "
                                          f"got low={low}, high={high}, num={num}")
        if num == 1:
            return (low,)
        ratio = math.log(high / low) / (num - 1)
        grid = []
        for j in range(num):  # increasing, so a repeat is the value before: refused on sight
            value = float(f"{low * math.exp(ratio * j):.6g}")
            if grid and value == grid[-1]:
                raise SuiteError(source, key, f"repeats a value: {value:g} (its {num} points, each "
                                              f"rounded to 6 significant digits, are too close; "
                                              f"lower num)")
            grid.append(value)
    elif isinstance(raw, list):
        if not raw:
            raise SuiteError(source, key, "is an empty grid; give ≥ 1 learning rate")
        grid = [_positive_float(v, source, f"{key}[{j}]") for j, v in enumerate(raw)]
    else:
        grid = [_positive_float(raw, source, key)]
    if len(set(grid)) != len(grid):
        raise SuiteError(source, key, f"repeats a value: {_first_repeat(grid)} "
                                      f"(in {shown(grid)})")
    return tuple(sorted(grid))


def _seed_list(raw: Any, source: str, key: str) -> tuple[int, ...]:
    """A list of integers from 0 to `MAX_SEED`, or `{first, count}` (its size already checked)."""
    if isinstance(raw, dict):
        doc = _mapping(raw, source, key, allowed={"first", "count"}, required={"first", "count"})
        first = _int(doc["first"], source, f"{key}.first", minimum=0, maximum=MAX_SEED)
        count = _int(doc["count"], source, f"{key}.count", minimum=0)
        if count and first + count - 1 > MAX_SEED:
            raise SuiteError(source, key, f"runs to seed {first + count - 1}, above the largest "
                                          f"seed {MAX_SEED} (2^63 - 1)")
        return tuple(range(first, first + count))
    if not isinstance(raw, list):
        raise SuiteError(source, key, f"must be a list of integers or {{first, count}}, "
                                      f"got {shown(raw)}")
    seeds = tuple(_int(v, source, f"{key}[{j}]", minimum=0, maximum=MAX_SEED)
                  for j, v in enumerate(raw))
    if len(set(seeds)) != len(seeds):
        raise SuiteError(source, key, f"repeats a seed: {_first_repeat(seeds)} "
                                      f"(in {shown(list(seeds))})")
    return seeds


def _task_seeds(raw: Any, source: str, key: str, tune: tuple[int, ...]) -> tuple[int, ...]:
    """A task's own `seeds: {eval: …}` (a published design runs a different number of seeds per
    task); its tuning seeds are the suite's."""
    doc = _mapping(raw, source, key, allowed={"eval"}, required={"eval"})
    return _eval_seeds(doc["eval"], source, key, tune)


def _eval_seeds(raw: Any, source: str, key: str, tune: tuple[int, ...]) -> tuple[int, ...]:
    """`KEY.eval`: at least one seed, none of them a tuning seed."""
    evals = _seed_list(raw, source, f"{key}.eval")
    if not evals:
        raise SuiteError(source, f"{key}.eval", "is empty; give ≥ 1 evaluation seed")
    shared = sorted(set(tune) & set(evals))
    if shared:
        raise SuiteError(source, key, f"evaluation seeds must be disjoint from the tuning seeds; "
                                      f"both contain {shown(shared)}")
    return evals


def _first_repeat(values: tuple | list) -> Any:
    seen = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _seeds(raw: Any, source: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    doc = _mapping(raw, source, "seeds", allowed={"tune", "eval"}, required={"eval"})
    tune = _seed_list(doc.get("tune", []), source, "seeds.tune")
    return tune, _eval_seeds(doc["eval"], source, "seeds", tune)


def check_plan_size(doc: dict[str, Any], source: str, max_runs: int) -> None:
    """Refuse a suite that plans more than `max_runs` runs, from the sizes it declares.

    Runs = tasks × (Σ lr points of the tuned grids × tuning seeds + configurations × evaluation
    seeds). Only counts are read here (a malformed entry counts as its smallest size and is
    reported by the checks that follow), so nothing of the suite's size is built first.
    """
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise ValueError(f"max_runs must be an integer ≥ 1, got {max_runs!r}")
    tasks = len(doc["tasks"]) if isinstance(doc.get("tasks"), list) else 1
    optimizers = doc.get("optimizers") if isinstance(doc.get("optimizers"), list) else []
    sizes = {f"optimizers[{i}].lr": _declared_size(o.get("lr"), "num", 1)
             for i, o in enumerate(optimizers) if isinstance(o, dict)}
    seeds = doc.get("seeds") if isinstance(doc.get("seeds"), dict) else {}
    for stage in ("tune", "eval"):
        sizes[f"seeds.{stage}"] = _declared_size(seeds.get(stage), "count", 0)
    for key, size in sizes.items():
        if size > max_runs:
            raise SuiteError(source, key, f"declares {size:,} values, more than the {max_runs:,} "
                                          f"runs a suite may plan; {_RAISE}")
    tuned = sum(n for k, n in sizes.items() if k.startswith("optimizers") and n > 1)
    configs, tune, evals = len(optimizers), sizes["seeds.tune"], sizes["seeds.eval"]
    own = [_declared_size(t["seeds"].get("eval"), "count", 0) for t in doc.get("tasks") or []
           if isinstance(t, dict) and isinstance(t.get("seeds"), dict)] if isinstance(doc.get("tasks"), list) else []
    if any(n > max_runs for n in own):
        raise SuiteError(source, "tasks", f"a task declares {max(own):,} evaluation seeds, more than the "
                                          f"{max_runs:,} runs a suite may plan; {_RAISE}")
    evals = max([evals, *own])  # an upper bound when tasks set their own
    runs = tasks * (tuned * tune + configs * evals)
    if runs > max_runs:
        raise SuiteError(source, "seeds", f"the suite plans {tasks} task(s) × ({tuned} tuned lr "
                                          f"points × {tune} tuning seeds + {configs} "
                                          f"configuration(s) × {evals} evaluation seeds) = "
                                          f"{runs:,} runs, more than {max_runs:,}; {_RAISE}")


def _check_expansion(raw: Any, source: str, limit: int = 100_000) -> None:
    """Refuse a document whose YAML aliases expand it past `limit` values, or make it contain
    itself: every later step (checks, messages, JSON) would walk the expansion."""
    sizes: dict[int, int] = {}  # id → expanded size; -1 while the node is being walked

    def size(node: Any) -> int:
        if not isinstance(node, (list, dict)):
            return 1
        known = sizes.get(id(node))
        if known == -1:
            raise SuiteError(source, "file", "a YAML alias makes a value contain itself")
        if known is not None:
            return known
        sizes[id(node)] = -1
        total = 1 + sum(size(child) for child in (node.values() if isinstance(node, dict)
                                                    else node))
        if total > limit:
            raise SuiteError(source, "file", f"expands to more than {limit:,} values through "
                                             "YAML aliases")
        sizes[id(node)] = total
        return total

    size(raw)


_RAISE = "shrink it, or raise the limit (`annealbench run --max-runs N`)"


def _declared_size(raw: Any, count_key: str, default: int) -> int:
    """How many values a list or a `{…, num|count}` mapping declares, without building them."""
    if isinstance(raw, list):
        return len(raw)
    if isinstance(raw, dict):
        count = raw.get(count_key)
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
    return default


def _selection(raw: Any, source: str) -> Selection:
    doc = _mapping(raw, source, "selection", allowed={"metric", "statistic"})
    metric = doc.get("metric", "val/loss")
    if not isinstance(metric, str) or not metric:
        raise SuiteError(source, "selection.metric", f"must be a metric name, got {shown(metric)}")
    statistic = doc.get("statistic", "median")
    if statistic not in SELECTION_STATISTICS:
        raise SuiteError(source, "selection.statistic",
                         f"must be one of {list(SELECTION_STATISTICS)}, got {shown(statistic)}")
    return Selection(metric=metric, statistic=statistic)


def _compare(raw: Any, source: str, tasks: tuple[TaskEntry, ...],
             optimizers: tuple[OptimizerEntry, ...]) -> Comparison:
    """The `compare:` section; its references must be configurations of the suite and its
    per-task margins tasks of the suite (by name, or by the full label the store records)."""
    try:
        compare = comparison_from_dict(raw, origin=f"compare section of {source}")
    except CompareError as err:
        raise SuiteError(source, err.key, err.problem) from None
    labels = [config_label(o.name, o.hparams) for o in optimizers]
    named = [c for pair in compare.explicit for c in pair] or list(compare.references)
    unknown = list(dict.fromkeys(r for r in named if r not in labels))
    if unknown:
        key = "compare.pairs" if compare.explicit else "compare.references"
        raise SuiteError(source, key, f"{unknown} are not configurations of the "
                                      f"suite; configurations: {labels}")
    task_labels = [task_label(t.name, t.overrides) for t in tasks]  # as the store records them
    known = dict.fromkeys([t.name for t in tasks] + task_labels)
    stray = [t for t, _ in compare.per_task if t not in known]
    if stray:
        raise SuiteError(source, "compare.per_task", f"{stray} are not tasks of the suite; allowed: a task's "
                                                     f"name or its full label, one of {list(known)}")
    return compare

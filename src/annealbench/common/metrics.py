"""What a task's metrics mean: name, which way is better, units.

A task declares each metric its evaluation logs (the name after the split prefix: `loss` for
`val/loss` and `test/loss`). Every reader of a metric takes its direction from that declaration:
lr selection, verdicts, profiles, claims and figures. The runner writes the declarations of a
suite's tasks to `DIR/metrics.json` before any run, so the analysis (which never imports the
tasks) reads the same facts:

    {"tasks": {"digits": {"loss": {"better": "lower", "units": "nats per label", "positive": true},
                          "acc":  {"better": "higher", "units": "fraction correct", "positive": false}}}}

`positive` says the metric is > 0 on every finite run (a loss, an error, a gap), so ratios of
two runs are meaningful and the verdict may decide on log-ratios.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("lower", "higher")
SPLITS = ("val", "test")  # the evaluation sets whose metrics a task declares
METRICS_FILE = "metrics.json"


class MetricError(ValueError):
    """A metric that is not declared, or declared inconsistently."""


@dataclass(frozen=True)
class Metric:
    """One evaluation metric of a task."""

    name: str  # after the split prefix: "loss" names val/loss and test/loss
    better: str  # "lower" or "higher"
    units: str  # what one unit is, e.g. "nats per character"
    positive: bool = True  # > 0 on every finite run: ratios are meaningful

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise MetricError(f"metric name must be non-empty without '/', got {self.name!r}")
        if self.better not in DIRECTIONS:
            raise MetricError(f"metric {self.name!r}: better must be one of {list(DIRECTIONS)}, "
                              f"got {self.better!r}")

    @property
    def sign(self) -> float:
        """+1 when lower is better, −1 when higher is better: sign·value is 'lower is better'."""
        return 1.0 if self.better == "lower" else -1.0

    def to_dict(self) -> dict[str, Any]:
        return {"better": self.better, "units": self.units, "positive": self.positive}


def loss(units: str, positive: bool = True) -> Metric:
    return Metric("loss", "lower", units, positive)


ACCURACY = Metric("acc", "higher", "fraction correct", positive=False)


def split_name(metric: str) -> tuple[str, str]:
    """`test/loss` → ("test", "loss"); a name without an evaluation split is an error."""
    split, _, name = metric.partition("/")
    if split not in SPLITS or not name:
        raise MetricError(f"{metric!r} is not an evaluation metric; evaluation metrics are "
                          f"{' or '.join(s + '/NAME' for s in SPLITS)}")
    return split, name


@dataclass(frozen=True)
class Declarations:
    """The metric declarations of several tasks: task name → metric name → Metric."""

    tasks: Mapping[str, Mapping[str, Metric]]

    @classmethod
    def of(cls, tasks: Mapping[str, Iterable[Metric]]) -> Declarations:
        return cls({t: {m.name: m for m in ms} for t, ms in tasks.items()})

    def metric(self, task: str, metric: str) -> Metric:
        """The declaration of `metric` (`val/NAME` or `test/NAME`) on `task`, or MetricError."""
        _, name = split_name(metric)
        declared = self.tasks.get(task)
        if declared is None:
            raise MetricError(f"task {task!r} declares no metrics here (tasks declared: "
                              f"{sorted(self.tasks)})")
        if name not in declared:
            allowed = [f"{s}/{n}" for n in sorted(declared) for s in SPLITS]
            raise MetricError(f"task {task!r} does not log {metric!r}; its metrics: {allowed}")
        return declared[name]

    def common(self, tasks: Iterable[str], metric: str) -> Metric:
        """`metric`'s declaration on every task of `tasks`; MetricError when a task does not
        declare it or two tasks disagree on its direction."""
        found = {t: self.metric(t, metric) for t in tasks}
        directions = {m.better for m in found.values()}
        if len(directions) > 1:
            raise MetricError(f"{metric!r} is declared with different directions: "
                              + ", ".join(f"{t}: {m.better} is better" for t, m in sorted(found.items())))
        return next(iter(found.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": {t: {n: m.to_dict() for n, m in sorted(ms.items())}
                          for t, ms in sorted(self.tasks.items())}}

    @classmethod
    def from_dict(cls, doc: Any) -> Declarations:
        """The inverse of `to_dict`, checked."""
        if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), dict):
            raise MetricError(f"metric declarations must be {{'tasks': {{TASK: {{METRIC: ...}}}}}}, "
                              f"got {str(doc)[:80]!r}")
        tasks = {}
        for task, metrics in doc["tasks"].items():
            if not isinstance(metrics, dict):
                raise MetricError(f"task {task!r}: metrics must be a mapping, got {metrics!r}")
            try:
                tasks[task] = {name: Metric(name, m["better"], str(m.get("units", "")),
                                            bool(m.get("positive", True)))
                               for name, m in metrics.items()}
            except (KeyError, TypeError) as err:
                raise MetricError(f"task {task!r}: bad metric declaration ({err})") from None
        return cls(tasks)

"""The complete task shown in docs/adding-a-task.md builds and trains, read from the doc itself."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from annealbench.tasks.task_spec import Task
from tests.tasks.helpers import adamw, fit

DOC = Path(__file__).parents[2] / "docs" / "adding-a-task.md"


def _snippet() -> str:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return code


@pytest.fixture()
def wine(tmp_path):
    path = tmp_path / "wine_from_doc.py"
    path.write_text(_snippet(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("wine_from_doc", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_the_documented_task_is_about_forty_lines():
    assert 30 <= len(_snippet().strip().splitlines()) <= 50


def test_the_documented_task_builds_and_trains(wine):
    task = Task.of(wine.SPEC, "smoke")
    info = task.describe()
    assert info["task"] == "wine" and info["parameters"] == 13 * 3 + 3
    assert sum(info["splits"].values()) == 178
    module, logger, trainer = fit(task, adamw(0.05), seed=4)
    assert trainer.global_step == 40 and module.diverged_at_step is None
    final = {k: v for _, k, v in logger.rows}
    assert set(final) >= {"val/loss", "val/acc", "test/loss", "test/acc"}
    assert final["val/acc"] > 0.8 and final["test/acc"] > 0.8  # three well-separated cultivars
    with pytest.raises(ValueError, match="batch_size"):
        Task.of(wine.SPEC, "quick", batch_size=0)

"""Run identity from the canonical configuration (issue 14, item 2).

Identical configurations — however their overrides are ordered or their numbers spelled — share
a run id, a folder and a derived seed; different ones never do; any override value makes a safe
folder name of at most 255 bytes; and the analysis loads every store the runner's store code
writes for them.
"""

from __future__ import annotations

import json
import math

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annealbench.analysis.load import load_store
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import Outcome, ResultsStore
from annealbench.common.store_schema import (MAX_FOLDER_BYTES, NON_IDENTITY_OVERRIDES, canonical_items,
                                 format_lr, format_value, parse_label, parse_run_id)

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
VALUES = st.one_of(st.integers(-10**12, 10**12), st.booleans(), st.sampled_from(["1000", "true", "1e-05"]),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300))
OVERRIDES = st.dictionaries(KEYS, VALUES, max_size=4)
LRS = st.floats(min_value=1e-9, max_value=1e3, allow_nan=False)


def spec(overrides: dict, lr: float = 1e-2, seed: int = 1, **kw) -> RunSpec:
    base = dict(suite="s", stage="eval", task="quadratic", preset="smoke",
                task_overrides=tuple(overrides.items()), optimizer="muphi",
                hparams=(("window", "linear"),), lr=lr, seed=seed)
    return RunSpec(**{**base, **kw})


def respelled(overrides: dict) -> dict:
    """The same configuration written differently: reversed key order, integral numbers as floats."""
    def other(v):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53:
            return float(v)
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        return v
    return {k: other(v) for k, v in reversed(list(overrides.items()))}


def identity(overrides: dict) -> tuple:
    """What a configuration's overrides are: canonical values compared by their text."""
    return tuple((k, format_value(v)) for k, v in canonical_items(overrides)
                 if k not in NON_IDENTITY_OVERRIDES)


@given(OVERRIDES, LRS)
def test_identical_configurations_share_id_folder_and_seed(overrides, lr):
    a, b = spec(overrides, lr), spec(respelled(overrides), lr)
    assert (a.run_id, a.key, a.derived_seed) == (b.run_id, b.key, b.derived_seed)


@given(OVERRIDES, OVERRIDES)
def test_different_configurations_never_share_an_id_or_a_seed(x, y):
    a, b = spec(x), spec(y)
    if identity(x) == identity(y):
        assert (a.run_id, a.derived_seed) == (b.run_id, b.derived_seed)
    else:
        assert a.run_id != b.run_id and a.key != b.key
        assert a.derived_seed != b.derived_seed


@given(OVERRIDES, LRS, st.integers(0, 10**9))
def test_any_value_gives_a_safe_short_folder_and_a_readable_id(overrides, lr, seed):
    s = spec(overrides, lr, seed)
    folder = s.key
    assert len(folder.encode()) <= MAX_FOLDER_BYTES
    assert folder not in (".", "..") and "/" not in folder and "\0" not in folder
    assert all(c.isascii() and (c.isalnum() or c in "._=,~+-") for c in folder)
    parsed = parse_run_id(s.run_id)  # the id reads back exactly what was written
    assert parsed.task == "quadratic" and parsed.optimizer == "muphi" and parsed.seed == seed
    assert float(parsed.lr) == lr and format_lr(float(parsed.lr)) == parsed.lr
    assert [k for k, _ in parsed.overrides] == [k for k, _ in identity(overrides)]
    assert parse_label(s.task_label) == ("quadratic", parsed.overrides)


def test_data_location_is_recorded_but_not_part_of_the_identity():
    here, there = spec({"data_dir": "/a/b"}), spec({"data_dir": "/elsewhere", "download": True})
    assert (here.run_id, here.derived_seed) == (there.run_id, there.derived_seed)
    assert here.run_id == spec({}).run_id
    assert here.to_json()["task_overrides"] == {"data_dir": "/a/b"}


def test_one_thousand_and_one_thousand_point_zero_are_one_run():
    a, b = spec({"condition": 1000}), spec({"condition": 1000.0})
    assert a.run_id == b.run_id == "quadratic[condition=1000]/muphi[window=linear,lr=1e-2]/seed=1"
    assert a.derived_seed == b.derived_seed


def test_existing_seeds_are_unchanged_without_overrides():
    # The seed formula of stores written before canonicalisation, for a run without overrides.
    import hashlib
    key = json.dumps(["quadratic", "smoke", [], 1], sort_keys=True)
    old = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF
    assert spec({}).derived_seed == old


def _write_store(root, specs: list[RunSpec]) -> None:
    store = ResultsStore(root)
    store.ensure_writable()
    for k, s in enumerate(specs):
        folder = store.folder(s)
        folder.start(s, keep_checkpoints=False)
        if k % 3 == 2:
            folder.fail("RuntimeError: boom", {"git_commit": "c"}, 0.1, reason="timeout")
            continue
        rows = pd.DataFrame({"step": [1, 2], "metric": ["val/loss"] * 2, "value": [1.0, 0.5]})
        folder.finish(rows, {"git_commit": "c", "git_dirty": False},
                      Outcome("done", max_steps=2, wall_time_s=0.1))
    store.gather(specs)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(OVERRIDES, min_size=1, max_size=4), st.lists(LRS, min_size=1, max_size=2))
def test_the_analysis_loads_every_store_the_runner_writes(tmp_path_factory, overrides, lrs):
    specs = {s.run_id: s for o in overrides for lr in lrs for s in (spec(o, lr, stage="tune"),)}
    root = tmp_path_factory.mktemp("store")
    _write_store(root, list(specs.values()))
    store = load_store(root)
    assert set(store.runs["run_id"]) == set(specs)
    for row in store.runs.to_dict("records"):
        s = specs[row["run_id"]]
        assert row["task"] == s.task_label and row["task_name"] == "quadratic"
        assert json.loads(row["task_overrides"]) == json.loads(json.dumps(dict(s.task_overrides)))
        assert math.isclose(row["lr"], s.lr, rel_tol=0, abs_tol=0)
    failed = store.runs[store.runs["status"] == "failed"]
    assert set(failed["failure_reason"]) <= {"timeout"}

"""Relabelling configurations, renumbering seeds or reordering rows changes no conclusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annealbench.analysis.claims import all_claims
from annealbench.analysis.load import load_store
from annealbench.analysis.analyse import Options, analyse
from tests.analysis.conftest import MIXED
from tests.analysis.synthetic import BASELINE, write_store

RENAME = {"adamw": "zz-adam", "muphi": "aa-mu"}  # reverses the alphabetical order of the labels


def _rename(text: str) -> str:
    for old, new in RENAME.items():
        text = text.replace(old, new)
    return text


def _rewrite(root, out, *, relabel=False, seed_map=None, shuffle=False):
    runs = pd.read_parquet(root / "runs.parquet")
    results = pd.read_parquet(root / "results.parquet")
    ids = dict(zip(runs["run_id"], runs["run_id"]))
    if relabel:
        for col in ("run_id", "optimizer", "config"):
            runs[col] = runs[col].map(_rename)
        ids = {k: _rename(v) for k, v in ids.items()}
    if seed_map is not None:
        new_ids = {}
        for old, new in ids.items():
            head, seed = new.rsplit("/seed=", 1)
            new_ids[old] = f"{head}/seed={seed_map[int(seed)]}"
        runs["run_id"] = runs["run_id"].map(lambda r: r.rsplit("/seed=", 1)[0]) + "/seed=" + \
            runs["seed"].map(seed_map).astype(str)
        runs["seed"] = runs["seed"].map(seed_map).astype("int64")
        ids = new_ids
    results["run_id"] = results["run_id"].map(ids)
    if shuffle:
        runs = runs.sample(frac=1.0, random_state=1)
        results = results.sample(frac=1.0, random_state=2)
    out.mkdir()
    runs.to_parquet(out / "runs.parquet", index=False)
    results.to_parquet(out / "results.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = write_store(tmp_path_factory.mktemp("ref") / "s", MIXED)
    return root, analyse(load_store(root))


def _key(frame):
    return frame.sort_values(["task", "config"]).reset_index(drop=True)


VERDICT_NUMBERS = ["margin", "estimate", "ci_low", "ci_high", "p_difference", "p_equivalence", "verdict", "n"]


def _verdict_key(frame):
    return frame.sort_values(["scope", "config", "reference"]).reset_index(drop=True)[VERDICT_NUMBERS]


NUMBERS = ["n", "n_diverged", "mean_diff", "ci_low", "ci_high", "p_t", "p_wilcoxon", "d_z", "a_better", "p_holm",
           "min_detectable"]


def test_relabelling_configurations_changes_no_conclusion(reference, tmp_path):
    root, ref = reference
    a = analyse(load_store(_rewrite(root, tmp_path / "r", relabel=True)), Options(references=(_rename(BASELINE),)))
    got = _key(a.paired.assign(config=a.paired["config"].map(lambda c: c.replace("aa-mu", "muphi"))))
    pd.testing.assert_frame_equal(got[NUMBERS], _key(ref.paired)[NUMBERS])
    verdict = a.verdict.assign(config=a.verdict["config"].map(lambda c: c.replace("aa-mu", "muphi")))
    pd.testing.assert_frame_equal(_verdict_key(verdict), _verdict_key(ref.verdict))
    ref_ranks = dict(zip(ref.friedman.configs, ref.friedman.average_ranks))
    for config, rank in zip(a.friedman.configs, a.friedman.average_ranks):
        assert rank == pytest.approx(ref_ranks[_rename(config).replace("zz-adam", "adamw").replace("aa-mu", "muphi")])
    assert a.friedman.p_value == pytest.approx(ref.friedman.p_value)
    inverse = lambda s: s.replace("zz-adam", "adamw").replace("aa-mu", "muphi")  # noqa: E731
    assert sorted(map(inverse, all_claims(a)["Verdicts"][1:])) == sorted(all_claims(ref)["Verdicts"][1:])


def test_renumbering_seeds_and_shuffling_rows_changes_no_conclusion(reference, tmp_path):
    root, ref = reference
    seed_map = {s: int(v) for s, v in zip(range(6), [40, 3, 17, 8, 25, 1])}
    a = analyse(load_store(_rewrite(root, tmp_path / "r", seed_map=seed_map, shuffle=True)))
    pd.testing.assert_frame_equal(_key(a.paired)[NUMBERS], _key(ref.paired)[NUMBERS], check_exact=False)
    pd.testing.assert_frame_equal(_verdict_key(a.verdict), _verdict_key(ref.verdict), check_exact=False)
    for key, r in ref.maxt.items():
        np.testing.assert_allclose(a.maxt[key].p_adjusted, r.p_adjusted)
    assert a.friedman.chi2_scipy == pytest.approx(ref.friedman.chi2_scipy)
    np.testing.assert_allclose(a.friedman.average_ranks, ref.friedman.average_ranks)
    pd.testing.assert_frame_equal(a.failures, ref.failures)

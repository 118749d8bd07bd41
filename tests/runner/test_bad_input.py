"""Bad input is refused at the door in one line: unbounded suite sizes, seeds the store cannot
hold, a machine without SLURM or a GPU, and the small ones (lock waits, `status` on a folder that
is not a store, `--help`, `annealbench train`'s threads and output, the README's run ids)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from annealbench import cli
from annealbench.runner.launch import devices
from annealbench.runner.errors import LockedError, SuiteError
from annealbench.runner.store.lock import results_lock
from annealbench.runner.suite.run_spec import RunSpec
from annealbench.runner.store.results_store import Outcome, ResultsStore
from annealbench.runner.suite.suite import DEFAULT_MAX_RUNS, MAX_SEED, parse_suite, shipped_suites
from annealbench.common.store_schema import RunKey, parse_run_id
from tests.runner.helpers import ROOT
from tests.runner.limits import address_space_limit

TINY = """
name: tiny
preset: smoke
tasks: [quadratic]
optimizers:
  - {name: muphi, hparams: {window: linear}, lr: [1.0e-2, 3.0e-2]}
seeds: {tune: [1], eval: [2]}
"""
MB = 1 << 20


def _suite_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _refused_quickly(argv: list[str]) -> tuple[int, float, int]:
    """Exit status, seconds and peak traced bytes of `bench ARGV`, under a memory cap."""
    with address_space_limit():
        tracemalloc.start()
        started = time.perf_counter()
        try:
            code = cli.main(argv)
        finally:
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return code, elapsed, peak


# --- 4. unbounded suite sizes -----------------------------------------------------------------

@pytest.mark.parametrize("old, new, key, count", [
    ("eval: [2]", "eval: {first: 10, count: 1000000000}", "seeds.eval", "1,000,000,000"),
    ("lr: [1.0e-2, 3.0e-2]", "lr: {low: 1.0e-4, high: 1.0e-1, num: 100000000}",
     "optimizers[0].lr", "100,000,000"),
    ("tune: [1]", "tune: {first: 100, count: 1000000000000}", "seeds.tune", "1,000,000,000,000"),
])
def test_a_huge_suite_is_refused_before_anything_is_built(tmp_path, capsys, old, new, key, count):
    path = _suite_file(tmp_path, TINY.replace(old, new))
    code, elapsed, peak = _refused_quickly(["run", str(path), "--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{path}: {key}: declares {count} values" in err and "--max-runs" in err
    assert peak < 20 * MB and elapsed < 10  # refused from the counts: nothing of that size built


def test_the_product_of_sizes_is_refused_naming_the_count_and_the_limit_is_overridable(
        tmp_path, capsys):
    text = TINY.replace("eval: [2]", "eval: {first: 10, count: 60000}").replace(
        "tasks: [quadratic]", "tasks: [quadratic, diabetes]")
    path = _suite_file(tmp_path, text)
    code, _, peak = _refused_quickly(["run", str(path), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "= 120,004 runs, more than 100,000" in err and peak < 20 * MB
    suite = parse_suite(text, source="big.yaml", max_runs=120_004)  # the limit is the caller's
    assert len(suite.eval_seeds) == 60_000
    with pytest.raises(SuiteError, match="120,004 runs, more than 120,003"):
        parse_suite(text, source="big.yaml", max_runs=120_003)


def test_the_shipped_suites_fit_the_default_limit():
    for path in shipped_suites().values():
        parse_suite(path.read_text(), source=str(path))
    assert DEFAULT_MAX_RUNS >= 10 * 1980  # ten times the largest shipped suite (quick)


# --- 5. seeds the store cannot hold ------------------------------------------------------------

@pytest.mark.parametrize("seeds, key", [
    ("eval: [9223372036854775808]", "seeds.eval[0]"),
    ("eval: [340282366920938463463374607431768211456]", "seeds.eval[0]"),
    ("eval: {first: 9223372036854775800, count: 10}", "seeds.eval"),
    ("eval: {first: 9223372036854775808, count: 1}", "seeds.eval.first"),
])
def test_a_seed_beyond_int64_is_refused_in_the_suite(seeds, key):
    with pytest.raises(SuiteError, match=re.escape(f"s.yaml: {key}: ")) as err:
        parse_suite(TINY.replace("eval: [2]", seeds), source="s.yaml")
    assert str(MAX_SEED) in str(err.value)


def test_train_refuses_a_seed_beyond_int64(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "quadratic", "sgd", "--seed", str(2**63), "--out", str(out)])
    assert exit_.value.code == 2
    assert f"--seed: must be an integer from 0 to {MAX_SEED}" in capsys.readouterr().err
    assert not out.exists()


def test_no_run_spec_holds_a_seed_the_store_cannot_gather(tmp_path):
    spec = dict(suite="s", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                optimizer="sgd", hparams=(), lr=1e-2)
    for bad in (2**63, -1, 1.5, True):
        with pytest.raises(ValueError, match="a seed must be an integer from 0 to"):
            RunSpec(**spec, seed=bad)
    # the largest seed allowed is gathered, and read back exactly
    largest = RunSpec(**spec, seed=MAX_SEED)
    store = ResultsStore(tmp_path)
    folder = store.folder(largest)
    folder.start(largest, keep_checkpoints=False)
    folder.finish(pd.DataFrame({"step": [1], "metric": ["val/loss"], "value": [0.5]}), {},
                  Outcome("done", max_steps=1))
    store.gather([largest])
    assert pd.read_parquet(tmp_path / "runs.parquet")["seed"].tolist() == [MAX_SEED]


# --- 8. missing systems: refused before anything is created ------------------------------------

def test_slurm_launcher_without_slurm_is_refused_before_anything_is_created(tmp_path, capsys,
                                                                          monkeypatch):
    path, out = _suite_file(tmp_path, TINY), tmp_path / "out"
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no sbatch, whatever this machine has
    assert cli.main(["run", str(path), "--out", str(out), "--launcher", "slurm"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SLURM is not available" in err and "sbatch" in err
    assert "--launcher local" in err
    assert not out.exists()


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setattr(devices, "visible_gpus", lambda: [])


def test_gpu_accelerator_without_a_gpu_is_refused_before_anything_is_created(tmp_path, capsys,
                                                                           no_gpu):
    path, out = _suite_file(tmp_path, TINY), tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--accelerator", "gpu"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no GPU is visible" in err and "--accelerator cpu" in err
    assert not out.exists()
    assert cli.main(["train", "quadratic", "sgd", "--out", str(out), "--accelerator", "gpu"]) == 3
    assert "no GPU is visible" in capsys.readouterr().err
    assert not out.exists()


def test_more_devices_than_gpus_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(devices, "visible_gpus", lambda: ["0"])
    out = tmp_path / "out"
    assert cli.main(["run", str(_suite_file(tmp_path, TINY)), "--out", str(out),
                     "--accelerator", "gpu", "--devices", "2"]) == 3
    assert "--devices 2: only 1 GPU(s) are visible" in capsys.readouterr().err
    assert not out.exists()


# --- 10. the small ones ------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from annealbench.runner.store.lock import results_lock
with results_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_wait_lock_takes_seconds_or_inf(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "smoke", "--wait-lock", value])
    assert exit_.value.code == 2
    assert "--wait-lock: must be a number of seconds ≥ 0, or inf to wait for ever" in \
        capsys.readouterr().err


def test_waiting_for_the_lock_says_whom_it_waits_for(tmp_path, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "1.5"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level("WARNING", logger="annealbench.runner.store.lock"):
            with pytest.raises(LockedError, match=f"still in use by pid {holder.pid}"):
                with results_lock(tmp_path, timeout_s=0.2):
                    pass
            assert f"in use by pid {holder.pid}" in caplog.text and "up to 0.2 s" in caplog.text
            caplog.clear()
            got = threading.Event()

            def wait_for_ever() -> None:
                with results_lock(tmp_path, timeout_s=float("inf")):
                    got.set()

            waiter = threading.Thread(target=wait_for_ever)
            waiter.start()
            waiter.join(timeout=30)
            assert got.is_set()  # once the holder let go
            assert f"in use by pid {holder.pid}" in caplog.text and "for ever" in caplog.text
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("make", [
    lambda p: p,                       # an empty folder
    lambda p: p / "missing",           # no folder at all
    lambda p: (p / "file").write_text("x") and p / "file",
])
def test_status_of_a_folder_that_is_not_a_store_is_an_error(tmp_path, capsys, make):
    target = make(tmp_path)
    assert cli.main(["status", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {target} is not a results directory (it has neither runs/ nor "
                   "runs.parquet); give the --out of an `annealbench run` or `annealbench train`")


def test_help_lists_no_hidden_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "SUPPRESS" not in out and "run-one" not in out and "train" in out


def test_train_threads_follow_the_flag_then_omp_num_threads(monkeypatch, tmp_path):
    from annealbench.runner.train_cmd import prepare_train

    def threads(*extra: str) -> int:
        args = cli.parser().parse_args(["train", "quadratic", "sgd", "--out", str(tmp_path),
                                        *extra])
        return prepare_train(args.task, args.optimizer, preset=args.preset, seed=args.seed,
                             assignments=args.assignments, out=args.out, wandb="disabled",
                             devices=args.devices, strategy=args.strategy,
                             threads=args.threads).options.threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads() == 3 and threads("--threads", "5") == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # nested levels: the first is ours
    assert threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS must be an integer ≥ 1, got 'many'"):
        threads()
    assert not (tmp_path / "runs").exists()  # preparing writes nothing


def test_train_says_where_it_wrote_the_run_and_uses_omp_num_threads(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cli.main(["train", "quadratic", "sgd", "--set", "window=cosine", "--set", "lr=1e-2",
                     "--out", str(tmp_path), "--wandb", "disabled"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    run_dir = Path(json.loads(lines[0])["run_dir"])
    assert run_dir.parent == tmp_path / "runs" and (run_dir / "DONE").is_file()
    assert json.loads((run_dir / "provenance.json").read_text())["torch_threads"] == 1


def test_the_readme_run_ids_are_the_ones_the_code_writes():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    ids = re.findall(r"`([\w-]+(?:\[[^`\]]*\])?/[\w-]+\[[^`\]]*\]/seed=\d+)`", text)
    assert ids, "the README shows no run id"
    for run_id in ids:
        parsed = parse_run_id(run_id)
        written = RunKey.of(parsed.task, parsed.overrides, parsed.optimizer, parsed.hparams,
                            float(parsed.lr), parsed.seed).run_id
        assert run_id == written


def test_the_smoke_suite_predicts_no_verdict():
    comments = [line for line in shipped_suites()["smoke"].read_text().splitlines()
                if line.lstrip().startswith("#")]
    claims = [c for c in comments
              if re.search(r"\b(inconclusive|equivalent|better|worse)\b", c, re.IGNORECASE)]
    assert not claims  # its verdicts come from two seeds: the comment must not promise one

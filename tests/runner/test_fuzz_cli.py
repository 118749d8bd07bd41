"""Random command lines and suite sizes: every outcome is a success or one clear error line —
never a traceback, a hang or an unbounded allocation.

`bench` runs in this process (its `main`, output captured); `run` always takes `--dry-run` with
given step times and `train` stops after its checks, so no example trains anything.
"""

from __future__ import annotations

import io
import time
import tracemalloc
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from annealbench import cli
from annealbench.runner.errors import SuiteError
from annealbench.runner.suite.suite import DEFAULT_MAX_RUNS, parse_suite
from tests.runner.limits import address_space_limit

VALUES = ["-1", "0", "1", "2", "7", "inf", "-inf", "nan", "1e9", "1000000000", "10**9",
          str(2**63 - 1), str(2**63), str(2**64), "99999999999999999999999999", "abc", "", " ",
          "auto", "local", "slurm", "debug", "gpu", "cpu", "ddp", "offline", "disabled",
          "x=1", "=", "quadratic=0.01", "diabetes=-1", "quadratic=inf", "é", "--dry-run"]
# Each option with values it accepts; any of VALUES may be drawn instead.
RUN_OPTIONS = {"--workers": ["0", "1", "2"], "--wait-lock": ["0", "1.5", "inf"],
               "--max-runs": ["1", "100", "100000"], "--seed-batch": ["auto", "1", "3"],
               "--devices": ["1", "2"], "--run-timeout": ["10"], "--measure-steps": ["1", "3"],
               "--max-retries": ["0", "2"], "--launcher": ["local", "slurm"],
               "--accelerator": ["cpu", "auto", "gpu"], "--wandb": ["disabled", "offline"],
               "--strategy": ["auto", "ddp"], "--step-time": ["quadratic=0.5"],
               "--submitit-cluster": ["local"], "--partition": ["gpu"], "--timeout-min": ["5"],
               "--cpus-per-task": ["2"], "--gpus-per-node": ["0", "1"]}
TRAIN_OPTIONS = {"--preset": ["smoke", "quick"], "--seed": ["0", "5", str(2**63 - 1)],
                 "--threads": ["1", "2"], "--devices": ["1"], "--accelerator": ["cpu", "auto"],
                 "--wandb": ["disabled"], "--strategy": ["auto"]}
SET_KEYS = {"lr": ["1e-2", "3e-3"], "window": ["cosine", "linear", "zigzag"],
            "warmup": ["0.1"], "plateau": ["0.5"], "weight_decay": ["0.01"], "p": ["2"],
            "foo": ["1"], "task.max_steps": ["60", "120"], "task.batch_size": ["8"],
            "task.nope": ["1"], "task.val_every": ["30"]}
SUITE = """
name: fuzz
preset: smoke
tasks: {tasks}
optimizers:
  - {{name: muphi, hparams: {{window: linear}}, lr: {{low: 1.0e-3, high: 1.0e-1, num: {num}}}}}
  - {{name: adamw, hparams: {{window: cosine}}, lr: [1.0e-2]}}
seeds:
  tune: {{first: {tune_first}, count: {tune_count}}}
  eval: {{first: {eval_first}, count: {eval_count}}}
"""
SIZES = st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(0, 10**6),
                  st.integers(0, 10**13),
                  st.sampled_from([2**62, 2**63 - 1, 2**63, 2**64, 10**30]))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A scratch folder, an empty store and a suite file name the examples reuse."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "store" / "runs").mkdir(parents=True)
    (root / "plain").mkdir()
    (root / "file").write_text("x")
    return root


def _bench(argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `bench ARGV`, run in this process under a memory cap;
    an exception escaping `main` (a traceback) fails the example."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with address_space_limit(), redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit_:  # argparse: usage, then its one error line
            code = exit_.code
    assert time.perf_counter() - started < 60, f"{argv} took too long"  # a hang, not a timing
    event(f"exit status {code}")
    return code, out.getvalue(), err.getvalue()


def _assert_clear(argv: list[str], code: int, err: str) -> None:
    assert code in (0, 1, 2, 3), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ") or ": error: " in line]
        assert errors and errors == [lines[-1]], (argv, err)  # exactly one, and last
        assert len(errors[0]) < 2000, (argv, errors[0][:200])


def _value(accepted: list[str]):
    return st.one_of(st.sampled_from(accepted), st.sampled_from(VALUES))


@st.composite
def options(draw, accepted: dict[str, list[str]], most: int = 3) -> list[str]:
    argv: list[str] = []
    for name in draw(st.lists(st.sampled_from(sorted(accepted)), max_size=most)):
        argv += [name, draw(_value(accepted[name]))]
    return argv


@st.composite
def suite_text(draw) -> str:
    tasks = draw(st.sampled_from(["[quadratic]", "[quadratic, diabetes]"]))
    return SUITE.format(tasks=tasks, num=draw(SIZES), tune_first=draw(SIZES),
                        tune_count=draw(SIZES), eval_first=draw(SIZES) + 10**6,
                        eval_count=draw(SIZES))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_run_dry_run_arguments_and_suites(folder, data):
    suite = folder / "fuzz.yaml"
    suite.write_text(data.draw(st.one_of(st.just(SUITE.format(
        tasks="[quadratic, diabetes]", num=2, tune_first=1, tune_count=1, eval_first=10,
        eval_count=2)), suite_text())))
    argv = ["run", str(suite), "--dry-run", "--step-time", "quadratic=0.01",
            "--step-time", "diabetes=0.01", *data.draw(options(RUN_OPTIONS))]
    code, out, err = _bench(argv)
    _assert_clear(argv, code, err)
    if code == 0:
        assert "total:" in out  # the run table


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=st.sampled_from(["quadratic", "diabetes", "quadratic", "imagenet", ""]),
       optimizer=st.sampled_from(["sgd", "muphi", "adamw", "lion"]),
       sets=st.lists(st.sampled_from(sorted(SET_KEYS)), max_size=3),
       data=st.data())
def test_train_arguments_stop_after_the_checks(folder, task, optimizer, sets, data):
    argv = ["train", task, optimizer, "--out", str(folder / "train"), "--wandb", "disabled",
            *[a for key in sets for a in ("--set", f"{key}={data.draw(_value(SET_KEYS[key]))}")],
            *data.draw(options(TRAIN_OPTIONS))]
    checked = []
    with mock.patch("annealbench.runner.train_cmd.train", side_effect=lambda job: checked.append(job) or
                    {"run_id": job.spec.run_id, "status": "done"}):
        code, out, err = _bench(argv)
    _assert_clear(argv, code, err)
    assert (code == 0) == bool(checked)
    assert not (folder / "train").exists()  # the checks write nothing


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(["run", "status", "list", "train", "data", "gather",
                                       "run-one", "smoke", "quadratic", "--verify", "--help",
                                       "-h", "--out", "cifar10", "nope", *VALUES]),
                      max_size=6),
       where=st.sampled_from(["store", "plain", "file", "missing"]))
def test_any_words(folder, words, where):
    argv = list(words)
    if argv[:1] in (["status"], ["gather"]):
        argv.insert(1, str(folder / where))
    if argv[:1] in (["run"], ["train"], ["data"], ["run-one"]) and "--help" not in argv \
            and "-h" not in argv:
        argv.insert(1, "nonexistent-suite-or-task")  # never starts work; refused in one line
    code, _, err = _bench(argv)
    _assert_clear(argv, code, err)


@settings(max_examples=300, deadline=None)
@given(text=suite_text(), max_runs=st.sampled_from([1, 100, DEFAULT_MAX_RUNS, 10**6]))
@example(text=SUITE.format(tasks="[quadratic]", num=2, tune_first=1, tune_count=1,
                          eval_first=10, eval_count=10**9), max_runs=DEFAULT_MAX_RUNS)
@example(text=SUITE.format(tasks="[quadratic]", num=10**8, tune_first=1, tune_count=1,
                          eval_first=10, eval_count=1), max_runs=DEFAULT_MAX_RUNS)
def test_suite_sizes_load_or_are_refused_in_bounded_memory(text, max_runs):
    with address_space_limit():
        tracemalloc.start()
        try:
            suite = parse_suite(text, source="fuzz.yaml", max_runs=max_runs)
        except SuiteError as err:
            assert len(str(err)) < 2000
            suite = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if suite is not None:
        tuned = sum(len(o.lr_grid) for o in suite.optimizers if len(o.lr_grid) > 1)
        runs = len(suite.tasks) * (tuned * len(suite.tune_seeds)
                                   + len(suite.optimizers) * len(suite.eval_seeds))
        assert runs <= max_runs
        assert max(suite.tune_seeds + suite.eval_seeds) < 2**63
    else:
        assert peak < 16 << 20  # refused from the declared sizes: nothing of their size built


def test_a_log_grid_too_fine_for_its_digits_is_refused_at_its_first_repeat():
    """462k points from 1e-3 to 1e-1 round (6 significant digits) to a repeat at the 307th: the
    suite is refused there, before the rest of the grid is built."""
    text = SUITE.format(tasks="[quadratic]", num=461976, tune_first=1, tune_count=1,
                        eval_first=10, eval_count=1)
    tracemalloc.start()
    try:
        with pytest.raises(SuiteError) as err:
            parse_suite(text, source="fuzz.yaml", max_runs=10**6)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert "repeats a value: 0.00100305" in err.value.problem and "lower num" in err.value.problem
    assert peak < 1 << 20

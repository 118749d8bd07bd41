"""An unfinished run with a Lightning checkpoint resumes from it and keeps its earlier rows."""

from __future__ import annotations

import pandas as pd
import torch

from bench.execute import RunOptions, execute_run
from bench.spec import RunSpec


def test_resume_from_last_checkpoint_keeps_rows(tmp_path, caplog):
    spec = RunSpec(suite="t", stage="eval", task="quadratic", preset="smoke", task_overrides=(),
                   optimizer="muphi", hparams=(("window", "linear"),), lr=1e-2, seed=1)
    options = RunOptions(wandb="disabled", checkpoints=True)
    run_dir = tmp_path / "run"
    assert execute_run(spec, run_dir, options, {}).status == "done"
    first = pd.read_parquet(run_dir / "metrics.parquet")
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 60
    rows = next(v["rows"] for k, v in ckpt["callbacks"].items() if "RowsInCheckpoint" in k)
    assert len(rows) == len(first)
    (run_dir / "DONE").unlink()  # as if killed after the checkpoint, before the marker
    with caplog.at_level("INFO", logger="bench.execute"):
        assert execute_run(spec, run_dir, options, {}).status == "done"
    assert "resuming from" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "metrics.parquet"), first,
                                  check_exact=True)

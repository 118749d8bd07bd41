"""The analysis package reads the store only: it never imports the training code."""

from __future__ import annotations

import subprocess
import sys


def test_analysis_never_imports_training_code():
    code = ("import sys, annealbench.analysis, annealbench.analysis.report, annealbench.analysis.figures, "
            "annealbench.analysis.sensitivity, annealbench.analysis.cli; "
            "print(sorted({'.'.join(m.split('.')[:2]) if m.startswith('annealbench.') else m.split('.')[0] "
            "for m in sys.modules} & {'annealbench.tasks', 'annealbench.optimizers', 'annealbench.runner', "
            "'annealbench.perf', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

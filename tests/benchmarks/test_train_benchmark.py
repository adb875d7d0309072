"""benchmarks/train.py still runs end to end (a smoke test: one repetition, no timing checked).

The benchmark patches nclab internals to count operations with the metric sets taken out; a change
of those internals (e.g. collapse_metrics_many's return_means) must not break it silently."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "train.py"


def test_train_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run(
        [sys.executable, str(BENCH), "--reps", "1", "--processes", "1", "--paper-reps", "1", "--paper-samples", "64",
         "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(out.read_text())
    q = data["quick_cpu"]
    for key in ("a_bare_train_epoch_s", "b_plain_eval_s", "c_tracked_eval_s", "ratio_tracked_eval_over_plain_eval"):
        assert q[key] > 0, key
    ops = q["ops"]
    # the stub that takes the metric sets out must leave fewer operations than the real call
    assert ops["tracked_eval_without_metric_sets"] < ops["tracked_eval"]
    assert q["metric_sets_s"]["pytorch"] > 0
    assert data["paper_cpu"]["eval_samples_per_s"] > 0

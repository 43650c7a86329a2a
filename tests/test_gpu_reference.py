"""The one-shot GPU reference run works end to end: its smoke mode (tiny models, a few steps, on the CPU) runs every
section and writes both result files. The real run needs a GPU and is not part of the tests."""
import json, math, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ["mnist-pixelcnn", "mnist-vae", "mnist-parallelcnn", "mnist-glow", "mnist-vdvae"]


def test_smoke_run(tmp_path):
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(ROOT/"bench"/"gpu_reference.py"), "--smoke", "--device", "cpu", "--output-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, env=environment)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path/"gpu_reference.json").read_text())
    assert summary["smoke"] and summary["notes"] == [], summary["notes"]
    trained = [row for row in summary["rows"] if "fast_path_variant" not in row]
    assert [row["preset"] for row in trained] == PRESETS
    for row in trained:
        assert row["steps"] == 6 and math.isfinite(row["nats"]) and row["nats"] > 0, row
    vae = next(row for row in trained if row["preset"] == "mnist-vae")
    assert vae["nats_is_upper_bound"] and vae["importance_samples"] == 5 and math.isfinite(vae["iw_nats"])
    parallel = next(row for row in trained if row["preset"] == "mnist-parallelcnn")
    assert parallel["sample_16_seconds"] > 0 and parallel["speedup_over_cached_pixelcnn"] > 0
    assert [row["fast_path_variant"] for row in summary["rows"] if "fast_path_variant" in row] == ["DataLoader", "bf16-mixed"]
    table = (tmp_path/"gpu_reference.md").read_text()
    assert "smoke mode" in table and all(f"| {preset} |" in table for preset in PRESETS)

"""The one-shot GPU run works as written: `bench/gpu_reference.sh --smoke` runs the speed bench and every training
section of `gpu_reference.py` with tiny models on the CPU and writes both results files; `--dry-run` prints the plan of
the real run. The real run needs a GPU and is not part of the tests."""
import json, math, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"bench"))
from gpu_reference import COMPILE_PAYS, compile_pays  # noqa: E402
from preset_settings import preset_settings  # noqa: E402

PRESETS = ["mnist-pixelcnn", "mnist-vae", "mnist-parallelcnn", "mnist-glow", "mnist-vdvae"]


def script(*arguments, output):
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "OUT": str(output)}
    return subprocess.run(["bash", str(ROOT/"bench"/"gpu_reference.sh"), *arguments], capture_output=True, text=True, timeout=900, env=environment)


def test_smoke_run(tmp_path):
    run = script("--smoke", output=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    speed = [line for line in run.stdout.splitlines() if line.startswith("+ ")]
    assert speed[0].startswith("+ python bench/gpu_speed.py --smoke") and speed[1].startswith("+ python bench/gpu_reference.py --smoke")
    (speed_file,) = tmp_path.glob("*-speed-smoke.json")
    (reference_file,) = tmp_path.glob("*-reference-smoke.json")
    summary = json.loads(reference_file.read_text())
    assert summary["smoke"] and summary["time_boxed"] and summary["notes"] == [], summary["notes"]
    assert summary["kind"] == "reference" and summary["commit"] and summary["date"] in reference_file.name
    assert [row["preset"] for row in summary["rows"]] == PRESETS
    for row in summary["rows"]:
        assert row["steps"] == 6 and math.isfinite(row["nats"]) and row["nats"] > 0, row
        assert 0 < row["nats_standard_error"] < row["nats"], row
        assert row["value_checks"] is False, row  # trained on the fast path
        settings, gpu = preset_settings(row["preset"])
        # the fast path: the preset's GPU learning rate and batch (capped at 64 in smoke mode), warmup over as many images
        assert row["learning_rate"] == gpu["learning_rate"] and row["batch_size"] == min(gpu["batch_size"], 64), row
        assert row["warmup_steps"] == round(settings.get("warmup_steps", 0) * settings["batch_size"] / row["batch_size"])
        assert row["precision"] == "32-true" and row["compiled"] is False  # the smoke speed run times no compiled engine
    vae = next(row for row in summary["rows"] if row["preset"] == "mnist-vae")
    assert vae["nats_is_upper_bound"] and vae["importance_samples"] == 5 and math.isfinite(vae["iw_nats"]) and vae["iw_nats_standard_error"] > 0
    parallel = next(row for row in summary["rows"] if row["preset"] == "mnist-parallelcnn")
    assert parallel["sample_16_seconds"] > 0 and parallel["speedup_over_cached_pixelcnn"] > 0
    table = reference_file.with_suffix(".md").read_text()
    assert "smoke mode" in table and "Time-boxed" in table and all(f"| {preset} |" in table for preset in PRESETS)
    assert json.loads(speed_file.read_text())["kind"] == "speed"


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    run = script("--dry-run", "mnist-data", output=tmp_path)
    assert run.returncode == 0, run.stderr
    plan = [line[2:] for line in run.stdout.splitlines() if line.startswith("+ ")]
    # the interpreter's own pip: a machine's `pip` may install into another Python
    assert plan[0] == "python -m pip install -q --no-deps --no-build-isolation -e ."
    speed = next(i for i, line in enumerate(plan) if line.startswith("python bench/gpu_speed.py"))
    reference = next(i for i, line in enumerate(plan) if line.startswith("python bench/gpu_reference.py"))
    assert speed < reference, plan
    assert "--data-root mnist-data" in plan[reference] and f"--speed-results {tmp_path}" in plan[reference]
    assert f"--output-dir {tmp_path}" in plan[speed] and "--budget-seconds" in plan[speed]
    assert list(tmp_path.iterdir()) == []


def write_speed(folder, name, device, date, ratios):
    rows = [{"preset": preset, "engine_compiled_over_eager": ratio} for preset, ratio in ratios.items()]
    (folder/f"{name}.json").write_text(json.dumps({"kind": "speed", "device": device, "date": date, "smoke": False, "rows": rows}))


def test_compile_where_the_speed_run_measured_it_to_pay(tmp_path):
    write_speed(tmp_path, "old", "cuda (NVIDIA H200)", "2026-12-01", {"mnist-pixelcnn": 3.0})
    write_speed(tmp_path, "new", "cuda (NVIDIA H200)", "2026-12-05", {"mnist-pixelcnn": 1.5, "mnist-vae": COMPILE_PAYS - 0.01, "mnist-glow": None})
    write_speed(tmp_path, "other", "cuda (Tesla T4)", "2026-12-06", {"mnist-vae": 2.0})
    assert compile_pays(tmp_path, "cuda (NVIDIA H200)", smoke=False) == {"mnist-pixelcnn": 1.5}
    assert compile_pays(tmp_path/"other.json", "cuda (NVIDIA H200)", smoke=False) == {"mnist-vae": 2.0}
    with pytest.raises(FileNotFoundError, match="no speed run on cpu"): compile_pays(tmp_path, "cpu (1 thread)", smoke=False)
    (tmp_path/"reference.json").write_text(json.dumps({"kind": "reference", "rows": []}))
    with pytest.raises(ValueError, match="not a speed run"): compile_pays(tmp_path/"reference.json", "cpu", smoke=False)


def test_trains_uncompiled_when_no_speed_run_was_written(tmp_path):
    import argparse
    from gpu_reference import Reference
    reference = Reference(argparse.Namespace(device="cpu", speed_results=tmp_path, smoke=False))
    (note,) = reference.notes
    assert reference.compile_pays == {} and note.startswith(f"every preset trained uncompiled: {tmp_path} holds no speed run on cpu")

"""The speed bench (`bench/gpu_speed.py`): its smoke mode builds every preset's table on the CPU, and its counters and
clocks measure what they say. Speed itself is measured by the bench, not asserted here."""
import json, math, os, re, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"bench"))
from gpu_speed import PRESETS, OperatorCount, TimeBox  # noqa: E402

RATES = ["engine_batch", "bare_batch", "engine_gpu_batch", "bare_gpu_batch", "engine_gpu_batch_bf16", "bare_gpu_batch_bf16"]
RATIOS = ["engine_over_bare_batch", "engine_over_bare_gpu_batch", "engine_bf16_over_32", "bare_bf16_over_32"]


def positive(value): return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speed")
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(ROOT/"bench"/"gpu_speed.py"), "--smoke", "--device", "cpu", "--output-dir", str(folder)],
                         capture_output=True, text=True, timeout=600, env=environment, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (path,) = folder.glob("*.json")
    return path, json.loads(path.read_text()), run.stdout


def test_smoke_table_has_every_preset_and_cell(smoke):
    path, summary, stdout = smoke
    assert summary["kind"] == "speed" and summary["smoke"] and summary["time_boxed"] and summary["device"] == "cpu (1 thread)"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", summary["date"]) and summary["commit"] and summary["torch"] == torch.__version__
    assert path.name == f"{summary['date']}-cpu-speed-smoke.json"
    assert [row["preset"] for row in summary["rows"]] == PRESETS
    for row in summary["rows"]:
        for key in RATES + RATIOS + ["gflop_per_image", "tflops_engine_gpu_batch"]: assert positive(row[key]), (row["preset"], key, row[key])
        assert row["engine_over_bare_batch"] == pytest.approx(row["engine_batch"] / row["bare_batch"], rel=1e-2)
        assert (row["batch_size"], row["gpu_batch_size"]) == (4, 8)
        # value checks are off: no operator of the forward or backward pass reads a value back to the host
        assert row["host_reads_forward_backward"] == 0, row
        # nor does drawing samples, which on CUDA lets the samplers run as CUDA graphs
        assert row["sample_16_host_reads"] == 0 and row["sample_16_operators"] > 0, row
        assert row["ops_per_step"] == row["ops_forward"] + row["ops_backward"] + row["ops_optimizer_foreach"] > 0
        assert row["ops_optimizer_for_loop"] > row["ops_optimizer_foreach"] > row["ops_optimizer_fused"] > 0, row
        assert 0 < row["parameter_tensors"] <= row["parameters"]
        assert row["engine_gpu_batch_compiled"] is None  # compilation is not timed in smoke mode, and the notes say so
        samplers = row["sample_16_seconds"]
        expected = {"mnist-pixelcnn": ["fast", "naive"], "mnist-gated-pixelcnn": ["fast"], "cifar10-pixelcnn": ["fast"]}.get(row["preset"], ["sample"])
        assert sorted(samplers) == expected and all(positive(seconds) for seconds in samplers.values()), (row["preset"], samplers)
    assert len(summary["notes"]) == len(PRESETS)
    table = path.with_suffix(".md").read_text()
    assert "smoke mode" in table and all(f"| {preset} |" in table for preset in PRESETS)
    assert table in stdout  # the markdown is printed as well as written
    cells = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"preset"')]
    assert {(cell["preset"], cell["cell"]) for cell in cells} >= {(preset, "engine, GPU batch, bf16-mixed") for preset in PRESETS}


def test_operator_count_counts_aten_operators_and_host_reads():
    x = torch.ones(3)
    with OperatorCount() as counted:
        with torch.profiler.record_function("a marker, not an operator"):
            y = (x * 2).sum()
        y.item()
    assert counted.counts["aten.mul.Tensor"] == 1 and counted.counts["aten.sum.default"] == 1
    assert counted.host_reads == 1
    assert not any(name.startswith("profiler") for name in counted.counts)
    assert counted.total == sum(counted.counts.values())
    with OperatorCount() as nothing: pass
    assert nothing.total == 0


def test_time_box_times_the_steps_after_warmup():
    box = TimeBox(torch.device("cpu"), warmup=2, seconds=0.0, min_steps=3)
    done = [box.tick() for _ in range(5)]
    assert done == [False, False, False, False, True] and box.steps - box.warmup == 3
    assert positive(box.steps_per_second())
    unfinished = TimeBox(torch.device("cpu"), warmup=1, seconds=0.0, min_steps=2)
    unfinished.tick()
    with pytest.raises(RuntimeError, match="did not close"): unfinished.steps_per_second()
    with pytest.raises(ValueError, match="warmup must be at least 1"): TimeBox(torch.device("cpu"), 0, 1.0, 1)


def test_a_failing_cell_is_a_note_except_in_smoke_mode():
    import argparse
    from gpu_speed import Bench, measure
    def out_of_memory(name, settings): raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
    bench = Bench(argparse.Namespace(device="cpu", smoke=False, budget_seconds=None))
    assert measure(bench, "mnist-glow", {}, {}, "engine, GPU batch, 32-bit", out_of_memory) is None
    assert bench.notes == ["mnist-glow: engine, GPU batch, 32-bit failed (RuntimeError: CUDA out of memory.)"]
    assert measure(bench, "mnist-glow", {}, {}, "a cell that works", lambda name, settings: 12.34) == 12.3
    smoke = Bench(argparse.Namespace(device="cpu", smoke=True, budget_seconds=None))
    with pytest.raises(RuntimeError, match="out of memory"): measure(smoke, "mnist-glow", {}, {}, "cell", out_of_memory)

"""The results files in `bench/results/` and the README tables computed from them (`bench/results_files.py`)."""
import json, sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"bench"))
from preset_settings import preset_settings  # noqa: E402
from results_files import RESULTS, preset_table, read_results, results_stem, results_table  # noqa: E402

HEADER = dict(kind="reference", device="cuda (NVIDIA H200)", command="python bench/gpu_reference.py", commit="0123456789abcdef",
              torch="2", pytorch_lightning="2", python="3", time_boxed=True, wall_seconds=1.0, notes=[])
ROW = dict(preset="mnist-pixelcnn", nats=88.1, bits_per_dim=0.162, nats_is_upper_bound=False, train_seconds=60.0, epochs=9.5, batch_size=512)


def write(folder, name, **fields):
    (folder/f"{name}.json").write_text(json.dumps({**HEADER, **fields}))


def test_every_committed_results_file_records_its_run():
    files = read_results(RESULTS)
    assert files, "bench/results holds no results file"
    for path, summary in files:
        for key in ("kind", "date", "device", "command", "commit", "torch", "time_boxed", "rows"): assert key in summary, (path.name, key)
        assert path.stem == results_stem(summary)
        assert path.with_suffix(".md").exists()


def test_results_table_of_the_first_h200_run():
    table = results_table(RESULTS)
    rows = [line for line in table.splitlines() if "2026-12-04" in line]
    assert [line.split(" | ")[0] for line in rows] == ["| `mnist-pixelcnn`", "| `mnist-vae`", "| `mnist-parallelcnn`", "| `mnist-glow`", "| `mnist-vdvae`"]
    assert all("time-boxed" in line and "`b74f82b`" in line and "cuda (NVIDIA H200)" in line for line in rows)
    vae = next(line for line in rows if "`mnist-vae`" in line)
    assert "| 92.04 |" in vae and "importance-weighted bound | 40 |" in vae  # the bound, not the ELBO, with its k
    assert "an upper bound: the dequantised density" in next(line for line in rows if "`mnist-glow`" in line)


def test_tables_leave_out_smoke_runs_and_show_standard_errors(tmp_path):
    write(tmp_path, "a", date="2026-12-05", smoke=False, rows=[{**ROW, "nats_standard_error": 0.31}])
    write(tmp_path, "b", date="2026-12-06", smoke=True, rows=[{**ROW, "nats": 999.0}])
    write(tmp_path, "c", date="2026-12-06", smoke=False, kind="speed", rows=[{"preset": "mnist-pixelcnn"}])
    table = results_table(tmp_path)
    assert "88.1 ± 0.31" in table and "999" not in table and len(table.splitlines()) == 3
    assert [path.name for path, _ in read_results(tmp_path, smoke=True)] == ["b.json"]
    assert [path.name for path, _ in read_results(tmp_path, "speed")] == ["c.json"]


def test_preset_table_lists_every_preset_with_its_gpu_batch_and_latest_number(tmp_path):
    write(tmp_path, "old", date="2026-12-05", smoke=False, rows=[ROW])
    write(tmp_path, "new", date="2026-12-07", smoke=False, time_boxed=False, rows=[{**ROW, "nats": 84.2}])
    table = preset_table(tmp_path)
    presets = sorted(path.stem for path in (ROOT/"pygenbrix"/"presets").glob("*.yaml"))
    lines = table.splitlines()[2:]
    assert [line.split("`")[1] for line in lines] == presets
    for name, line in zip(presets, lines):
        settings, gpu = preset_settings(name)
        assert f"| {gpu['batch_size']} ({gpu['learning_rate']}) |" in line and f"| {settings['batch_size']} (" in line
    pixelcnn = next(line for line in lines if line.startswith("| `mnist-pixelcnn`"))
    assert "84.2 nats" in pixelcnn and "time-boxed" not in pixelcnn and "new.json" in pixelcnn
    assert sum("not measured" in line for line in lines) == len(presets) - 1


def test_results_stem_names_the_device():
    assert results_stem({**HEADER, "date": "2026-12-04", "smoke": False}) == "2026-12-04-nvidia-h200-reference"
    assert results_stem({**HEADER, "device": "cpu (2 threads)", "kind": "speed", "date": "2026-12-04", "smoke": True}) == "2026-12-04-cpu-speed-smoke"


def test_preset_settings_takes_out_the_gpu_keys(tmp_path):
    for name in ("mnist-vae", "mnist-vdvae"):
        settings, gpu = preset_settings(name)
        raw = yaml.safe_load((ROOT/"pygenbrix"/"presets"/f"{name}.yaml").read_text())
        assert gpu == {"batch_size": raw["gpu_batch_size"], "learning_rate": raw["gpu_learning_rate"]}
        assert gpu["batch_size"] > settings["batch_size"] and not any(key.startswith("gpu_") for key in settings)
    with pytest.raises(ValueError, match="unknown preset 'no-such'"): preset_settings("no-such")

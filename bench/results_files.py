"""The results files of the benches in `bench/results/`, and the tables computed from them.

One run writes one file, `<date>-<device>-<kind>.json` (and a `.md` rendering beside it). Every file records what the
run was and where it ran:

- `kind`: "reference" (time-boxed training runs scored on the test set, `gpu_reference.py`) or "speed" (`gpu_speed.py`);
- `date` (UTC, YYYY-MM-DD), `device`, `command` (from the repository root), `commit` (of the checkout that ran),
  `torch`, `pytorch_lightning`, `python`, `wall_seconds`;
- `time_boxed`: true when the training runs stopped at a share of wall time, not at the end of the preset's schedule;
- `smoke`: true for the tiny CPU runs of the tests, whose numbers mean nothing and appear in no table;
- `rows`: the numbers, one dict per preset (and per variant).

`preset_table` and `results_table` render the README's tables from these files.
"""
import datetime, json, platform, subprocess
from pathlib import Path

import yaml

RESULTS = Path(__file__).resolve().parent/"results"
PRESETS = Path(__file__).resolve().parents[1]/"pygenbrix"/"presets"


def git_commit(folder=None) -> str:
    "The checkout's commit, with `-dirty` when it has uncommitted changes; 'unknown' outside a git checkout."
    folder = folder or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError): return "unknown"
    return commit + ("-dirty" if dirty else "")


def short_commit(commit: str) -> str:
    "The first 7 characters of a commit, and `-dirty` where the checkout had uncommitted changes."
    return commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")


def run_record(kind: str, device: str, command: str, time_boxed: bool, smoke: bool) -> dict:
    "The header of a results file: what ran, where and when."
    import torch, pytorch_lightning as pl
    return dict(kind=kind, date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), device=device, command=command,
                commit=git_commit(), torch=torch.__version__, pytorch_lightning=pl.__version__, python=platform.python_version(),
                time_boxed=time_boxed, smoke=smoke)


def results_stem(record: dict) -> str:
    "The file name, without suffix, of a run's results: `<date>-<device>-<kind>`, e.g. `2026-12-04-nvidia-h200-reference`."
    device = record["device"]
    name = device[device.find("(") + 1:device.rfind(")")] if device.startswith("cuda (") else device.split(" ")[0]
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    while "--" in slug: slug = slug.replace("--", "-")
    return f"{record['date']}-{slug}-{record['kind']}{'-smoke' if record['smoke'] else ''}"


def write_results(summary: dict, markdown: str, folder) -> Path:
    "Write `summary` as JSON and `markdown` beside it in `folder`; return the JSON file."
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    path = folder/f"{results_stem(summary)}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown)
    return path


def read_results(folder=RESULTS, kind: str = None, smoke: bool = False) -> list:
    "The results files of `kind` in `folder`, oldest first, each as `(path, summary)`: real runs, or with `smoke` the smoke runs only."
    files = []
    for path in sorted(Path(folder).glob("*.json")):
        summary = json.loads(path.read_text())
        if bool(summary.get("smoke")) != smoke or (kind is not None and summary.get("kind") != kind): continue
        files.append((path, summary))
    return sorted(files, key=lambda item: (item[1]["date"], item[0].name))


def upper_bound_kind(row: dict) -> str:
    "What kind of upper bound a row's `nats` is (its `nats_is_upper_bound` is true): a VAE's ELBO or a flow's dequantised density."
    return {"vae": "the ELBO", "vdvae": "the ELBO", "glow": "the dequantised density"}.get(row.get("model"), "a bound")


def _nll(row: dict) -> tuple:
    "`(number, what it is)` of a reference row: the importance-weighted bound where there is one."
    if row.get("iw_nats") is not None:
        value, error = row["iw_nats"], row.get("iw_nats_standard_error")
        kind = "importance-weighted bound"
    else:
        value, error = row["nats"], row.get("nats_standard_error")
        kind = f"an upper bound: {upper_bound_kind(row)}" if row.get("nats_is_upper_bound") else "exact"
    return (f"{value} ± {error}" if error is not None else f"{value}"), kind


def _minutes(seconds: float) -> str: return f"{seconds / 60:.1f} min"


def _trained_rows(summary: dict) -> list: return [row for row in summary.get("rows", []) if "fast_path_variant" not in row and "nats" in row]


def results_table(folder=RESULTS) -> str:
    "A markdown table of every trained model in the results files: its test NLL and how it was measured."
    lines = ["| preset | test NLL (nats) ± standard error over the test images, where the run recorded it | bits/dim | what it is | k | device | training | batch | commit | command |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for path, summary in read_results(folder, "reference"):
        for row in _trained_rows(summary):
            value, kind = _nll(row)
            training = f"{_minutes(row['train_seconds'])}, {row['epochs']} epochs"
            if summary.get("time_boxed"): training += ", time-boxed"
            batch = row.get("batch_size", "preset's")
            lines.append(f"| `{row['preset']}` | {value} | {row['bits_per_dim']} | {kind} | {row.get('importance_samples') or ''} | "
                         f"{summary['device']}, {summary['date']} | {training} | {batch} | `{short_commit(summary['commit'])}` | `{summary['command']}` |")
    if len(lines) == 2: lines.append("| no results file yet | | | | | | | | | |")
    return "\n".join(lines)


def preset_table(folder=RESULTS, presets=PRESETS) -> str:
    "A markdown table of every preset: its command, batch sizes, and the latest number a results file holds for it."
    measured = {}
    for path, summary in read_results(folder, "reference"):
        for row in _trained_rows(summary):
            value, kind = _nll(row)
            k = f", k={row['importance_samples']}" if row.get("iw_nats") is not None else ""
            boxed = f"time-boxed: {row['epochs']} epochs in {_minutes(row['train_seconds'])}" if summary.get("time_boxed") else \
                    f"{row['epochs']} epochs in {_minutes(row['train_seconds'])}"
            measured[row["preset"]] = f"{value} nats ({kind}{k}); {summary['device']}, {boxed} ({path.name})"
    lines = ["| preset | command | batch (learning rate) | on a GPU | number | what it is |", "|---|---|---|---|---|---|"]
    for path in sorted(Path(presets).glob("*.yaml"), key=lambda path: path.stem):
        settings = yaml.safe_load(path.read_text())
        gpu = f"{settings['gpu_batch_size']} ({settings['gpu_learning_rate']})" if "gpu_batch_size" in settings else ""
        lines.append(f"| `{path.stem}` | `pygenbrix train --preset {path.stem}` | {settings.get('batch_size', 64)} ({settings.get('learning_rate', 0.001)}) | "
                     f"{gpu} | {measured.get(path.stem, 'not measured')} | {settings['description']} |")
    return "\n".join(lines)

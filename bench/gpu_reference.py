"""The one-shot GPU reference run: each MNIST preset trained for a share of a few minutes on one GPU, and scored.

Each model is built at the size of its preset (`pygenbrix train --list-presets`) and trained through the same engine as
`pygenbrix train`, on MNIST held on the device (dynamically binarised; 8-bit grey levels for Glow), for a fixed share of
wall time, then scored on the whole test set:

- PixelCNN (`mnist-pixelcnn`): test NLL in nats on dynamically binarised MNIST;
- the single-level VAE (`mnist-vae`): the ELBO and the importance-weighted bound, with as many importance samples as
  its share of time allows (stated in the table);
- the multi-stage parallel CNN (`mnist-parallelcnn`): test NLL, and its time to draw 16 images against the PixelCNN's
  cached sampler and naive sampler, both models trained for the same time;
- Glow (`mnist-glow`): test bits/dim; VDVAE (`mnist-vdvae`): ELBO and importance-weighted bound;
- for every model, training throughput in images/second.

By default each preset trains on the fast path: at the batch and learning rate it names for a GPU (`gpu_batch_size`,
`gpu_learning_rate`; its warmup scaled to the same number of images), 32-bit with TF32 matrix products on CUDA, the data
held on the device, value checks off (`validation(False)`: no value read back to the host in a step; the test scoring
keeps them), and compiled where a speed run (`--speed-results`, written by `gpu_speed.py`) measured compilation
to pay. `--batch preset` trains at the preset's own batch and learning rate instead.

These are time-boxed runs, far shorter than the presets' schedules (the table says how many epochs each got), so they
are upper bounds on what each preset reaches, not literature numbers. The results go to
`<output-dir>/<date>-<device>-reference.json` and `.md` (see `results_files.py`).

    python bench/gpu_reference.py --data-root data                # on a GPU: about 4 minutes on an H200
    python bench/gpu_reference.py --smoke --output-dir /tmp/smoke  # anywhere: tiny models, seconds; what CI runs
"""
import argparse, json, logging, math, statistics, sys, time, warnings
from pathlib import Path

import torch
import pytorch_lightning as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preset_settings import preset_settings
from results_files import read_results, run_record, short_commit, upper_bound_kind, write_results
from pygenbrix.budget import describe_device, format_seconds
from pygenbrix.cli import model_factory
from pygenbrix.core import validation
from pygenbrix.data import MNIST, freeze_binarization
from pygenbrix.metrics import ImportanceWeightedObjective, evaluate_nll
from pygenbrix.train import DistributionTrainer

# seconds of training per model in the full run; the rest of its 4 minutes goes to start-up, data and evaluation
FULL_SECONDS = {"mnist-pixelcnn": 60, "mnist-vae": 30, "mnist-parallelcnn": 40, "mnist-glow": 30, "mnist-vdvae": 35}
# seconds of importance-weighted evaluation (the number of samples k is as many as fit)
IW_SECONDS = {"mnist-vae": 20, "mnist-vdvae": 15}
# a preset is trained compiled when the speed run measured its compiled engine at least this much faster than eager
COMPILE_PAYS = 1.2
# tiny sizes for the smoke run: every code path, in seconds on a CPU
SMOKE_OPTIONS = {
    "mnist-pixelcnn": {"channels": 8, "layers": 2},
    "mnist-vae": {"latent_dim": 4, "hidden_size": 32},
    "mnist-parallelcnn": {"hidden_channels": 8, "num_blocks": 1},
    "mnist-glow": {"num_levels": 2, "steps_per_level": 2, "hidden_channels": 16},
    "mnist-vdvae": {"width": 16, "spec": "28x1,14x1,7x1"},
}


class StepClock(pl.Callback):
    "Counts training steps and times those after the first `warmup` (which include start-up and compilation)."
    def __init__(self, warmup:int=10):
        self.warmup, self.steps, self.start, self.end = warmup, 0, None, None
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps += 1
        if self.steps == self.warmup:
            if trainer.strategy.root_device.type == "cuda": torch.cuda.synchronize()
            self.start = time.perf_counter()
    def on_train_end(self, trainer, module):
        if trainer.strategy.root_device.type == "cuda": torch.cuda.synchronize()
        self.end = time.perf_counter()
    def images_per_second(self, batch_size:int):
        return (self.steps - self.warmup) * batch_size / (self.end - self.start) if self.start and self.steps > self.warmup else None


def synchronized_seconds(function, device, repeats:int=3, warmups:int=1) -> float:
    """The median wall time of `function()` after `warmups` untimed calls, the GPU's queue drained before and after.
    A sampler's first call with a shape runs eagerly and its second captures a CUDA graph (`GraphReplayer`): with one
    warm-up, the median of three timed calls is a replay."""
    for _ in range(warmups): function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda": torch.cuda.synchronize()
        start = time.perf_counter(); function()
        if device.type == "cuda": torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Reference:
    "The run: its settings, its datasets, and the rows of its table."
    def __init__(self, args):
        self.args, self.device = args, torch.device(args.device)
        self.rows, self.notes, self.started = [], [], time.time()
        self.datasets = {}
        try: self.compile_pays = compile_pays(args.speed_results, describe_device(self.device), args.smoke) if args.speed_results else {}
        except FileNotFoundError as error:  # the speed run failed before writing its file: train uncompiled, and say so
            self.compile_pays = {}
            self.notes.append(f"every preset trained uncompiled: {error}")

    def data(self, binarize, pad_to_32=False):
        "MNIST's training set and the frozen test set, binarised as asked."
        key = (binarize, pad_to_32)
        if key not in self.datasets:
            train = MNIST(self.args.data_root, "train", binarize=binarize, pad_to_32=pad_to_32, download=self.args.download)
            test = MNIST(self.args.data_root, "test", binarize=binarize, pad_to_32=pad_to_32)
            if self.args.smoke: train, test = (torch.utils.data.Subset(d, range(n)) for d, n in ((train, 512), (test, 128)))
            self.datasets[key] = (train, freeze_binarization(test, seed=0))
        return self.datasets[key]

    def train(self, preset_name:str):
        "The preset's model, trained for its share of time on the fast path; its row of the table."
        preset, gpu = preset_settings(preset_name)
        options = {**preset.get("model_options", {}), **(SMOKE_OPTIONS[preset_name] if self.args.smoke else {})}
        binarize = None if preset.get("binarize") == "none" else preset.get("binarize", "dynamic")
        train_set, test_set = self.data(binarize, bool(preset.get("pad_to_32")))
        shape = train_set[0][0].shape
        torch.manual_seed(0)
        model = model_factory(preset["model"])(shape, binarize is not None, **options)
        clock = StepClock(warmup=2 if self.args.smoke else 20)
        limits = {"max_steps": 6} if self.args.smoke else {"max_time": {"seconds": FULL_SECONDS[preset_name] * self.args.time_scale}}
        paper_batch = preset.get("batch_size", 64)
        batch_size, learning_rate = (gpu["batch_size"], gpu["learning_rate"]) if self.args.batch == "gpu" else (paper_batch, preset.get("learning_rate", 1e-3))
        if self.args.smoke: batch_size = min(batch_size, 64)
        compiled = preset_name in self.compile_pays
        engine = dict(optimizer=preset.get("optimizer", "adam"), learning_rate=learning_rate,
                      weight_decay=preset.get("weight_decay", 0.), skip_threshold=preset.get("skip_threshold"),
                      ema_decay=preset.get("ema_decay"), gradient_clip_val=preset.get("gradient_clip_val"),
                      loss_per_dimension=preset.get("loss_per_dimension", False),
                      # a time-boxed run has no planned length for a cosine: warmup (over as many images as the preset's), then the rate
                      schedule="warmup" if preset.get("warmup_steps") else "constant",
                      warmup_steps=round(preset.get("warmup_steps", 0) * paper_batch / batch_size),
                      data_on_device=True, precision=self.args.precision, compile_model=compiled)
        started = time.time()
        # the fast path: no value checks, so a step reads nothing back to the host and compiles as one graph (the test scoring keeps them)
        with validation(False):
            run = DistributionTrainer(model, train_set, batch_size=batch_size, max_epochs=-1, validation_fraction=0., sample_grid=False,
                                      log_graph=False, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                      enable_model_summary=False, accelerator=self.device.type, devices=1, callbacks=[clock],
                                      seed=0, **limits, **engine).train()
        seconds = time.time() - started
        model.to(self.device).eval()
        torch.manual_seed(0)
        scored = evaluate_nll(model, test_set, batch_size=500)
        row = dict(preset=preset_name, model=preset["model"], parameters=sum(p.numel() for p in model.parameters()),
                   batch_size=batch_size, learning_rate=learning_rate, warmup_steps=engine["warmup_steps"], precision=self.args.precision,
                   compiled=compiled, value_checks=False, train_seconds=round(seconds, 1), steps=clock.steps, epochs=round(clock.steps * batch_size / len(train_set), 2),
                   images_per_second=_round(clock.images_per_second(batch_size)), test_images=len(test_set),
                   nats=round(scored["nats"], 2), nats_standard_error=round(scored["nats_standard_error"], 2), bits_per_dim=round(scored["bits_per_dim"], 4),
                   nats_is_upper_bound=bool(getattr(model, "log_prob_is_bound", False)), skipped_updates=run.engine.skipped_updates)
        return model, test_set, row

    def log(self, row):
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def _round(value, digits=1): return None if value is None else round(value, digits)


def importance_weighted(model, test_set, seconds_allowed, smoke, device):
    "`(k, nats, standard error, seconds)`: the importance-weighted bound of the whole test set with the most samples k (at most 5000) that fit in `seconds_allowed`."
    probe = torch.utils.data.Subset(test_set, range(min(50, len(test_set))))
    probe_k = 5 if smoke else 100
    probe_seconds = synchronized_seconds(lambda: evaluate_nll(model, probe, batch_size=50, objective=ImportanceWeightedObjective(probe_k)), device, 1, warmups=0)
    per_sample_image = probe_seconds / (len(probe) * probe_k)
    k = 5 if smoke else int(min(5000, seconds_allowed / (per_sample_image * len(test_set))))
    k = max(1, int(10 ** math.floor(math.log10(k)) * math.floor(k / 10 ** math.floor(math.log10(k)))))  # 1, 2, ..., 10, 20, ...
    torch.manual_seed(0)
    started = time.time()
    scored = evaluate_nll(model, test_set, max(1, 20000 // k), objective=ImportanceWeightedObjective(k))
    return k, round(scored["nats"], 2), round(scored["nats_standard_error"], 2), round(time.time() - started, 1)


def compile_pays(speed_results, device:str, smoke:bool) -> dict:
    """The presets whose compiled engine a speed run measured at least `COMPILE_PAYS` times as fast as eager: `{preset: ratio}`.
    `speed_results` is a `gpu_speed.py` results file, or a folder of them, whose latest run on `device` is read."""
    speed_results = Path(speed_results)
    if speed_results.is_dir():
        runs = [(path, summary) for path, summary in read_results(speed_results, "speed", smoke=smoke) if summary["device"] == device]
        if not runs: raise FileNotFoundError(f"{speed_results} holds no speed run on {device}: run bench/gpu_speed.py first")
        speed_results = runs[-1][0]
    summary = json.loads(speed_results.read_text())
    if summary.get("kind") != "speed": raise ValueError(f"{speed_results} is not a speed run's results (kind {summary.get('kind')!r})")
    return {row["preset"]: row["engine_compiled_over_eager"] for row in summary["rows"] if (row.get("engine_compiled_over_eager") or 0) >= COMPILE_PAYS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models and data, a few steps: checks every code path in seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", help="the folder holding MNIST/raw (default $PYGENBRIX_DATA)")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--batch", choices=("gpu", "preset"), default="gpu", help="train at the preset's gpu_batch_size and gpu_learning_rate (default) or at its batch_size and learning_rate")
    parser.add_argument("--precision", default="32-true", help="Lightning's precision for training (default 32-true; TF32 matrix products on CUDA)")
    parser.add_argument("--speed-results", type=Path, help="a gpu_speed.py results file: compile the presets whose compiled engine it measured faster")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every model's training time")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent/"results")
    parser.add_argument("--skip", default="", help="comma-separated presets to leave out")
    args = parser.parse_args(argv)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.device.startswith("cuda"):
        torch.set_float32_matmul_precision("high")  # TF32 matrix products in 32-bit training
        torch.backends.cudnn.benchmark = True
    reference = Reference(args)
    skip = set(filter(None, args.skip.split(",")))
    command = " ".join(["python", "bench/gpu_reference.py", *(sys.argv[1:] if argv is None else argv)])
    record = run_record("reference", describe_device(reference.device), command, time_boxed=True, smoke=args.smoke)
    print(json.dumps({**record, "precision": args.precision, "batch": args.batch, "compiled": sorted(reference.compile_pays)}), flush=True)

    def pixelcnn_row():
        nonlocal pixelcnn
        pixelcnn, test_set, row = reference.train("mnist-pixelcnn")
        return row

    def vae_row():
        vae, test_set, row = reference.train("mnist-vae")
        row["importance_samples"], row["iw_nats"], row["iw_nats_standard_error"], row["iw_seconds"] = importance_weighted(vae, test_set, IW_SECONDS["mnist-vae"], args.smoke, reference.device)
        return row

    def parallelcnn_row():
        parallel, test_set, row = reference.train("mnist-parallelcnn")
        with torch.no_grad():
            row["sample_16_seconds"] = round(synchronized_seconds(lambda: parallel.sample([16]), reference.device), 4)
            if pixelcnn is not None:
                cached = synchronized_seconds(lambda: pixelcnn.sample([16]), reference.device)
                row.update(pixelcnn_cached_sample_16_seconds=round(cached, 4), speedup_over_cached_pixelcnn=round(cached / row["sample_16_seconds"], 1))
                if not args.smoke:  # 784 full network passes: a second on a GPU, most of a minute on a busy CPU
                    naive = synchronized_seconds(lambda: pixelcnn.sample([16], method="naive"), reference.device, 1, warmups=0)
                    row.update(pixelcnn_naive_sample_16_seconds=round(naive, 3), speedup_over_naive_pixelcnn=round(naive / row["sample_16_seconds"]))
        return row

    def latent_row(name):
        model, test_set, row = reference.train(name)
        if name in IW_SECONDS:
            row["importance_samples"], row["iw_nats"], row["iw_nats_standard_error"], row["iw_seconds"] = importance_weighted(model, test_set, IW_SECONDS[name], args.smoke, reference.device)
        return row

    pixelcnn = None
    for name, row_of in (("mnist-pixelcnn", pixelcnn_row), ("mnist-vae", vae_row), ("mnist-parallelcnn", parallelcnn_row),
                         ("mnist-glow", lambda: latent_row("mnist-glow")), ("mnist-vdvae", lambda: latent_row("mnist-vdvae"))):
        if name in skip: continue
        try: reference.log(row_of())
        except Exception as error:
            # a GPU's minutes are too few to lose every preset to one failure; the smoke mode, which the tests run, raises
            if args.smoke: raise
            reference.notes.append(f"{name}: failed ({type(error).__name__}: {str(error).strip()[:300]})")
            print(json.dumps({"preset": name, "error": f"{type(error).__name__}: {error}"}), flush=True)
            if reference.device.type == "cuda": torch.cuda.empty_cache()

    summary = {**record, "precision": args.precision, "wall_seconds": round(time.time() - reference.started, 1),
               "rows": reference.rows, "notes": reference.notes}
    text = markdown(summary)
    print(text)
    print(f"written: {write_results(summary, text, args.output_dir)}", flush=True)


def error_of(row) -> str: return f" ± {row['nats_standard_error']}" if row.get("nats_standard_error") is not None else ""


def markdown(summary) -> str:
    "The results as markdown tables."
    lines = [f"# pygenbrix GPU reference run{' (smoke mode: tiny models, meaningless numbers)' if summary['smoke'] else ''}", "",
             f"{summary['device']}, {summary.get('date', '')}, commit `{short_commit(summary.get('commit', 'unknown'))}`, torch {summary['torch']}, "
             f"precision {summary['precision']}, {format_seconds(summary['wall_seconds'])} of wall time in all. Command: `{summary['command']}`", "",
             "Time-boxed: each preset trained for a share of a few minutes, far short of its schedule (the epochs column), so every "
             "number is an upper bound on what the preset reaches, not a literature number.", "",
             "| preset | parameters | batch (learning rate) | training | epochs | images/s | test NLL (nats) ± standard error | bits/dim | note |", "|---|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        if "fast_path_variant" in row: continue
        note = []
        if row.get("nats_is_upper_bound"): note.append(f"an upper bound: {upper_bound_kind(row)}")
        if row.get("iw_nats") is not None:
            error = f" ± {row['iw_nats_standard_error']}" if row.get("iw_nats_standard_error") is not None else ""
            note.append(f"importance-weighted bound {row['iw_nats']}{error} nats (k={row['importance_samples']})")
        if row.get("speedup_over_cached_pixelcnn"):
            naive = f", {row['speedup_over_naive_pixelcnn']}× than the naive one" if row.get("speedup_over_naive_pixelcnn") else ""
            note.append(f"16 samples in {row['sample_16_seconds']} s: {row['speedup_over_cached_pixelcnn']}× faster than the cached PixelCNN sampler{naive}")
        if row.get("compiled"): note.append("compiled")
        batch = f"{row['batch_size']} ({row['learning_rate']})" if "learning_rate" in row else str(row.get("batch_size", ""))
        lines.append(f"| {row['preset']} | {row['parameters']:,} | {batch} | {format_seconds(row['train_seconds'])} | {row['epochs']} | "
                     f"{row['images_per_second']} | {row['nats']}{error_of(row)} | {row['bits_per_dim']} | {'; '.join(note)} |")
    fast = [row for row in summary["rows"] if "fast_path_variant" in row]
    if fast:
        base = next((row for row in summary["rows"] if row["preset"] == "mnist-pixelcnn" and "fast_path_variant" not in row), None)
        lines += ["", "PixelCNN training throughput by data path and precision (the main run: data on the device, 32-bit):", "",
                  "| variant | images/s |", "|---|---|", f"| data on the device, 32-bit | {base['images_per_second'] if base else '-'} |"]
        lines += [f"| {row['fast_path_variant']} | {row['images_per_second']} |" for row in fast]
    lines += [f"- {note}" for note in summary["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

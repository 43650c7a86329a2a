"""The one-shot GPU reference run: the missing full-size numbers of pygenbrix, in about 8 minutes on one GPU.

Each model is built at the size of its preset (`pygenbrix train --list-presets`) and trained for a fixed share of
wall time on MNIST held on the device (dynamically binarised; 8-bit grey levels for Glow), through the same engine as
`pygenbrix train`, then scored on the whole test set:

- PixelCNN (`mnist-pixelcnn`): test NLL in nats on dynamically binarised MNIST;
- the single-level VAE (`mnist-vae`): the ELBO and the importance-weighted bound, with as many importance samples as
  its share of time allows (stated in the table);
- the multi-stage parallel CNN (`mnist-parallelcnn`): test NLL, and its time to draw 16 images against the PixelCNN's
  cached sampler and naive sampler, both models trained for the same time;
- Glow (`mnist-glow`): test bits/dim; VDVAE (`mnist-vdvae`): ELBO and importance-weighted bound;
- for every model, training throughput in images/second; and, for the PixelCNN, what each fast-path option gains.

These are time-boxed runs, shorter than the presets' schedules (the table says how many epochs each got), so they are
upper bounds on what each preset reaches. Results go to <output-dir>/gpu_reference.json and .md.

    python bench/gpu_reference.py --data-root data                # on a GPU: the full run
    python bench/gpu_reference.py --smoke --output-dir /tmp/smoke  # anywhere: tiny models, seconds; what CI runs
"""
import argparse, json, logging, math, os, platform, statistics, sys, time, warnings
from pathlib import Path

import torch
import pytorch_lightning as pl

from pygenbrix.budget import describe_device, format_seconds
from pygenbrix.cli import model_factory, read_preset
from pygenbrix.data import MNIST, freeze_binarization
from pygenbrix.metrics import ImportanceWeightedObjective, evaluate_nll
from pygenbrix.train import DistributionTrainer

# seconds of training per model in the full run; the rest of the 8 minutes goes to start-up, data and evaluation
FULL_SECONDS = {"mnist-pixelcnn": 100, "mnist-vae": 35, "mnist-parallelcnn": 60, "mnist-glow": 40, "mnist-vdvae": 40}
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


def synchronized_seconds(function, device, repeats:int=3) -> float:
    "The median wall time of `function()`, the GPU's queue drained before and after."
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

    def data(self, binarize, pad_to_32=False):
        "MNIST's training set and the frozen test set, binarised as asked."
        key = (binarize, pad_to_32)
        if key not in self.datasets:
            train = MNIST(self.args.data_root, "train", binarize=binarize, pad_to_32=pad_to_32, download=self.args.download)
            test = MNIST(self.args.data_root, "test", binarize=binarize, pad_to_32=pad_to_32)
            if self.args.smoke: train, test = (torch.utils.data.Subset(d, range(n)) for d, n in ((train, 512), (test, 128)))
            self.datasets[key] = (train, freeze_binarization(test, seed=0))
        return self.datasets[key]

    def train(self, preset_name:str, **engine_overrides):
        "The preset's model, trained for its share of time; its row of the table."
        preset = read_preset(preset_name)
        options = {**preset.get("model_options", {}), **(SMOKE_OPTIONS[preset_name] if self.args.smoke else {})}
        binarize = None if preset.get("binarize") == "none" else preset.get("binarize", "dynamic")
        train_set, test_set = self.data(binarize, bool(preset.get("pad_to_32")))
        shape = train_set[0][0].shape
        torch.manual_seed(0)
        model = model_factory(preset["model"])(shape, binarize is not None, **options)
        clock = StepClock(warmup=2 if self.args.smoke else 20)
        limits = {"max_steps": 6} if self.args.smoke else {"max_time": {"seconds": FULL_SECONDS[preset_name] * self.args.time_scale}}
        engine = dict(optimizer=preset.get("optimizer", "adam"), learning_rate=preset.get("learning_rate", 1e-3),
                      weight_decay=preset.get("weight_decay", 0.), skip_threshold=preset.get("skip_threshold"),
                      ema_decay=preset.get("ema_decay"), gradient_clip_val=preset.get("gradient_clip_val"),
                      # a time-boxed run has no planned length for a cosine: warmup, then the preset's rate
                      schedule="warmup" if preset.get("warmup_steps") else "constant", warmup_steps=preset.get("warmup_steps", 0),
                      data_on_device=True, precision=self.args.precision)
        engine.update(engine_overrides)
        batch_size = preset.get("batch_size", 64)
        started = time.time()
        run = DistributionTrainer(model, train_set, batch_size=batch_size, max_epochs=-1, validation_fraction=0., sample_grid=False,
                                  log_graph=False, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                  enable_model_summary=False, accelerator=self.device.type, devices=1, callbacks=[clock],
                                  seed=0, **limits, **engine).train()
        seconds = time.time() - started
        model.to(self.device).eval()
        torch.manual_seed(0)
        scored = evaluate_nll(model, test_set, batch_size=500)
        row = dict(preset=preset_name, model=preset["model"], parameters=sum(p.numel() for p in model.parameters()),
                   train_seconds=round(seconds, 1), steps=clock.steps, epochs=round(clock.steps * batch_size / len(train_set), 2),
                   images_per_second=_round(clock.images_per_second(batch_size)), test_images=len(test_set),
                   nats=round(scored["nats"], 2), bits_per_dim=round(scored["bits_per_dim"], 4),
                   nats_is_upper_bound=bool(getattr(model, "log_prob_is_bound", False)), skipped_updates=run.engine.skipped_updates)
        return model, test_set, row

    def log(self, row):
        self.rows.append(row)
        print(json.dumps(row), flush=True)


def _round(value, digits=1): return None if value is None else round(value, digits)


def importance_weighted(model, test_set, seconds_allowed, smoke, device):
    "The importance-weighted bound of the whole test set with the most samples (at most 5000) that fit in `seconds_allowed`."
    probe = torch.utils.data.Subset(test_set, range(min(50, len(test_set))))
    probe_k = 5 if smoke else 100
    probe_seconds = synchronized_seconds(lambda: evaluate_nll(model, probe, batch_size=50, objective=ImportanceWeightedObjective(probe_k)), device, 1)
    per_sample_image = probe_seconds / (len(probe) * probe_k)
    k = 5 if smoke else int(min(5000, seconds_allowed / (per_sample_image * len(test_set))))
    k = max(1, int(10 ** math.floor(math.log10(k)) * math.floor(k / 10 ** math.floor(math.log10(k)))))  # 1, 2, ..., 10, 20, ...
    torch.manual_seed(0)
    started = time.time()
    scored = evaluate_nll(model, test_set, batch_size=max(1, 20000 // k), objective=ImportanceWeightedObjective(k))
    return k, round(scored["nats"], 2), round(time.time() - started, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models and data, a few steps: checks every code path in seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", help="the folder holding MNIST/raw (default $PYGENBRIX_DATA)")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--precision", default=None, help="Lightning's precision for training (default 32-bit)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every model's training time")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent/"results")
    parser.add_argument("--skip", default="", help="comma-separated presets to leave out")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.backends.cudnn.benchmark = True
    reference = Reference(args)
    skip = set(filter(None, args.skip.split(",")))
    print(json.dumps({"device": describe_device(reference.device), "torch": torch.__version__, "pytorch_lightning": pl.__version__,
                      "smoke": args.smoke, "precision": args.precision or "32"}), flush=True)

    pixelcnn = parallel = None
    if "mnist-pixelcnn" not in skip:
        pixelcnn, test_set, row = reference.train("mnist-pixelcnn")
        reference.log(row)
    if "mnist-vae" not in skip:
        vae, test_set, row = reference.train("mnist-vae")
        row["importance_samples"], row["iw_nats"], row["iw_seconds"] = importance_weighted(vae, test_set, 40, args.smoke, reference.device)
        reference.log(row)
    if "mnist-parallelcnn" not in skip:
        parallel, test_set, row = reference.train("mnist-parallelcnn")
        with torch.no_grad():
            row["sample_16_seconds"] = round(synchronized_seconds(lambda: parallel.sample([16]), reference.device), 4)
            if pixelcnn is not None:
                cached = synchronized_seconds(lambda: pixelcnn.sample([16]), reference.device)
                row.update(pixelcnn_cached_sample_16_seconds=round(cached, 4), speedup_over_cached_pixelcnn=round(cached / row["sample_16_seconds"], 1))
                if not args.smoke:  # 784 full network passes: a second on a GPU, most of a minute on a busy CPU
                    naive = synchronized_seconds(lambda: pixelcnn.sample([16], method="naive"), reference.device, 1)
                    row.update(pixelcnn_naive_sample_16_seconds=round(naive, 3), speedup_over_naive_pixelcnn=round(naive / row["sample_16_seconds"]))
        reference.log(row)
    for name, iw_seconds in (("mnist-glow", None), ("mnist-vdvae", 20)):
        if name in skip: continue
        try: model_factory(read_preset(name)["model"])
        except Exception as error:
            reference.notes.append(f"{name}: not run ({type(error).__name__}: {error})"); continue
        model, test_set, row = reference.train(name)
        if iw_seconds: row["importance_samples"], row["iw_nats"], row["iw_seconds"] = importance_weighted(model, test_set, iw_seconds, args.smoke, reference.device)
        reference.log(row)
    if pixelcnn is not None and "fast-path" not in skip:
        for variant, overrides in (("DataLoader", {"data_on_device": False}), ("bf16-mixed", {"precision": "bf16-mixed"})):
            scale = args.time_scale
            args.time_scale = scale * 15 / FULL_SECONDS["mnist-pixelcnn"]  # 15 s each: enough for a steady rate
            _, _, row = reference.train("mnist-pixelcnn", **overrides)
            args.time_scale = scale
            reference.log({"preset": "mnist-pixelcnn", "fast_path_variant": variant, "images_per_second": row["images_per_second"],
                           "steps": row["steps"], "nats": row["nats"]})

    total = time.time() - reference.started
    summary = {"device": describe_device(reference.device), "torch": torch.__version__, "smoke": args.smoke,
               "precision": args.precision or "32", "wall_seconds": round(total, 1), "python": platform.python_version(),
               "command": " ".join(["python", "bench/gpu_reference.py", *sys.argv[1:]]), "rows": reference.rows, "notes": reference.notes}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir/"gpu_reference.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.output_dir/"gpu_reference.md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(summary) -> str:
    "The results as markdown tables."
    lines = [f"# pygenbrix GPU reference run{' (smoke mode: tiny models, meaningless numbers)' if summary['smoke'] else ''}", "",
             f"{summary['device']}, torch {summary['torch']}, precision {summary['precision']}, "
             f"{format_seconds(summary['wall_seconds'])} of wall time in all. Command: `{summary['command']}`", "",
             "| preset | parameters | training | epochs | images/s | test NLL (nats) | bits/dim | note |", "|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        if "fast_path_variant" in row: continue
        note = []
        if row.get("nats_is_upper_bound"): note.append("ELBO: an upper bound")
        if row.get("iw_nats") is not None: note.append(f"importance-weighted bound {row['iw_nats']} nats (k={row['importance_samples']})")
        if row.get("speedup_over_cached_pixelcnn"):
            note.append(f"16 samples in {row['sample_16_seconds']} s: {row['speedup_over_cached_pixelcnn']}× faster than the cached "
                        f"PixelCNN sampler, {row.get('speedup_over_naive_pixelcnn')}× than the naive one")
        lines.append(f"| {row['preset']} | {row['parameters']:,} | {format_seconds(row['train_seconds'])} | {row['epochs']} | "
                     f"{row['images_per_second']} | {row['nats']} | {row['bits_per_dim']} | {'; '.join(note)} |")
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

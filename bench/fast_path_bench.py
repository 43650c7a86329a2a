"""The fast path: what holding the data on the device, mixed precision and torch.compile each gain, measured in one run.

For each model, training throughput (images/second, after warm-up steps that include compilation) through pygenbrix's
engine, `DistributionTrainer`, on dynamically binarised MNIST, with:

- `baseline`: a DataLoader (one image at a time through torchvision's transform, then collated), 32-bit floats, eager;
- `data_on_device`: the dataset held on the device as one tensor, batches indexed and binarised there (`DeviceBatches`);
- `bf16-mixed`: Lightning's bfloat16 mixed precision;
- `compile`: the objective and model through `torch.compile` (`compile_model=True`);
- `all`: the three together.

The models: independent Bernoulli pixels (a step costs almost nothing: the data path is the whole cost) and the
PixelCNN of the `mnist-pixelcnn` preset (a step costs a real network). Before them, the data path alone: batches per
second of the DataLoader against `DeviceBatches`.

Usage:  python bench/fast_path_bench.py [--device cpu|cuda] [--steps 30] [--warmup 5] [--threads 2] [--batch-size 64]
MNIST is read from $PYGENBRIX_DATA (or --data-root). Prints one JSON line per measurement, then a markdown table.
"""
import argparse, json, logging, sys, time, warnings
from pathlib import Path

import torch
import pytorch_lightning as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from preset_settings import preset_settings
from pygenbrix.core import PyGenBrixModel
from pygenbrix.data import MNIST, image_tensors
from pygenbrix.layers.bernoulli import IndependentBernoulliLayer
from pygenbrix.models.pixelcnn import default_model as pixelcnn_model
from pygenbrix.train import DeviceBatches, DistributionTrainer, EpochShuffle

VARIANTS = {
    "baseline": {},
    "data_on_device": {"data_on_device": True},
    "bf16-mixed": {"precision": "bf16-mixed"},
    "compile": {"compile_model": True},
    "all": {"data_on_device": True, "precision": "bf16-mixed", "compile_model": True},
}


class StepClock(pl.Callback):
    "Times training steps: the clock starts when `warmup` steps have ended (compilation happens in the first)."
    def __init__(self, warmup):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.strategy.root_device.type == "cuda": torch.cuda.synchronize()
        self.steps += 1
        if self.steps == self.warmup: self.start = time.perf_counter()
        self.end = time.perf_counter()


def loader_rate(dataset, batch_size, device, batches):
    "Batches per second of the DataLoader and of DeviceBatches, including the move to the device."
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=EpochShuffle(len(dataset)))
    held = DeviceBatches(image_tensors(dataset).to(device), batch_size)
    rates = {}
    for name, source in (("DataLoader", loader), ("DeviceBatches", held)):
        iterator, count = iter(source), 0
        next(iterator)
        start = time.perf_counter()
        for images, labels in iterator:
            images = images.to(device, non_blocking=True)
            count += 1
            if count == batches: break
        if device.type == "cuda": torch.cuda.synchronize()
        rates[name] = count / (time.perf_counter() - start)
    return rates


def throughput(build, dataset, variant, args):
    "Training images per second of the model `build()` with the options of `variant`."
    options = dict(VARIANTS[variant])
    precision = options.pop("precision", None)
    torch.manual_seed(0)
    clock = StepClock(args.warmup)
    DistributionTrainer(build(), dataset, batch_size=args.batch_size, max_steps=args.warmup + args.steps, validation_fraction=0.,
                        sample_grid=False, log_graph=False, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator=args.device, devices=1, precision=precision, callbacks=[clock],
                        **options).train()
    return args.steps * args.batch_size / (clock.end - clock.start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-root")
    parser.add_argument("--models", default="bernoulli,pixelcnn")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    dataset = MNIST(args.data_root, split="train", binarize="dynamic")
    print(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup}), flush=True)

    rates = loader_rate(dataset, args.batch_size, device, batches=200)
    print(json.dumps({"measure": "data path, batches/s", **{k: round(v, 1) for k, v in rates.items()},
                      "ratio": round(rates["DeviceBatches"] / rates["DataLoader"], 1)}), flush=True)

    pixelcnn_options = preset_settings("mnist-pixelcnn")[0]["model_options"]
    models = {"bernoulli": lambda: PyGenBrixModel(IndependentBernoulliLayer(), [1, 28, 28]),
              "pixelcnn": lambda: pixelcnn_model([1, 28, 28], True, **pixelcnn_options)}
    rows = []
    for name in args.models.split(","):
        results = {}
        for variant in args.variants.split(","):
            results[variant] = throughput(models[name], dataset, variant, args)
            row = {"model": name, "variant": variant, "images_per_second": round(results[variant], 1),
                   "ratio_to_baseline": round(results[variant] / results["baseline"], 2) if "baseline" in results else None}
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(f"\n| model | {' | '.join(args.variants.split(','))} |\n|---|{'---|' * len(args.variants.split(','))}")
    for name in args.models.split(","):
        cells = [f"{r['images_per_second']:.0f} img/s ({r['ratio_to_baseline']}×)" for r in rows if r["model"] == name]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\ndata path alone: DataLoader {rates['DataLoader']:.0f} batches/s, DeviceBatches {rates['DeviceBatches']:.0f} batches/s "
          f"({rates['DeviceBatches'] / rates['DataLoader']:.1f}×), on {device}")


if __name__ == "__main__":
    main()

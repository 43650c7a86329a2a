"""PixelCNN benchmark: pygenbrix against the plain-PyTorch reference PixelCNN, side by side in one run.

Both models have the same architecture (7x7 mask A, `layers` residual 3x3 mask-B blocks, relu-1x1-relu-1x1 head,
one Bernoulli logit per pixel), width, depth, batch size and training data (random binary 28x28 images).

- training images/second: the reference's bare loop (Adam, no data loader) against pygenbrix's
  `BernoulliPixelCNN` trained through `DistributionTrainer` (Lightning, a DataLoader over the same
  images), with distribution argument validation on and off. The rounds are interleaved and the median is
  reported, since the machine may be shared. Lightning's start-up is excluded: the clock runs from the end
  of the warm-up steps to the end of the last step.
- sampling 16 images: pygenbrix's fast sampler (cached activations) against its naive sampler (a full network
  pass per pixel) and the reference's naive sampler. The naive samplers generate `--naive-rows` rows (pygenbrix's
  the last rows, completing images whose earlier rows are given; the reference's the first) and their time is
  scaled to the whole image (the cost of a naive step does not depend on the pixel).

Usage:  python bench/pixelcnn_bench.py [--channels 64 --layers 7 --batch 32 --steps 20 --rounds 2 --threads 2]
Prints one JSON line per measurement and a final JSON summary with the ratios.
"""
import argparse, importlib.util, json, statistics, sys, time
from pathlib import Path

import torch
import pytorch_lightning as pl

from pygenbrix.core import Distribution
from pygenbrix.models.pixelcnn import BernoulliPixelCNN
from pygenbrix.train import DistributionTrainer

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "ref_pixelcnn.py"


def load_reference(path):
    spec = importlib.util.spec_from_file_location("ref_pixelcnn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StepClock(pl.Callback):
    "Times training steps: the clock starts after `warmup` steps."
    def __init__(self, warmup):
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps += 1
        if self.steps == self.warmup: self.start = time.perf_counter()
        self.end = time.perf_counter()


def train_reference(ref, images, args):
    torch.manual_seed(0)
    model = ref.make_model(args.channels, args.layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    batches = images.split(args.batch)
    for step in range(args.warmup + args.steps):
        if step == args.warmup: start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = ref.nll_nats(model, batches[step]).mean()
        loss.backward()
        optimizer.step()
    float(loss)
    return args.steps * args.batch / (time.perf_counter() - start)


def train_pygenbrix(images, args, validate):
    Distribution.set_default_validate_args(validate)
    try:
        torch.manual_seed(0)
        model = BernoulliPixelCNN([1, 28, 28], channels=args.channels, layers=args.layers)
        dataset = torch.utils.data.TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
        clock = StepClock(args.warmup)
        started = time.perf_counter()
        DistributionTrainer(model, dataset, batch_size=args.batch, max_epoch=1, max_steps=args.warmup + args.steps,
                            validation_fraction=0, sample_grid=False, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[clock]).train()
        total = time.perf_counter() - started
    finally: Distribution.set_default_validate_args(True)
    assert clock.steps == args.warmup + args.steps, clock.steps
    return args.steps * args.batch / (clock.end - clock.start), total


def sample_times(ref, args):
    torch.manual_seed(0)
    model = BernoulliPixelCNN([1, 28, 28], channels=args.channels, layers=args.layers).eval()
    with torch.inference_mode(): model.log_prob(torch.zeros(16, 1, 28, 28))  # warm-up
    torch.manual_seed(1)
    start = time.perf_counter(); samples = model.sample([16], method="fast"); fast = time.perf_counter() - start
    # naive: the last rows only, as a completion in which every earlier row is given (a known prefix, so the completion
    # is exact); a naive step costs one full network pass wherever the pixel is, so the time scales to all 28 rows
    known = torch.ones(1, 28, 28, dtype=torch.bool); known[:, 28 - args.naive_rows:] = False
    start = time.perf_counter()
    torch.manual_seed(2); naive_rows = model.complete(samples, known, method="naive")
    naive = (time.perf_counter() - start) * 28 / args.naive_rows
    torch.manual_seed(2); fast_rows = model.complete(samples, known, method="fast")
    reference = ref.bench_sample(ref.make_model(args.channels, args.layers), 16, args.naive_rows * 28)
    return {"fast_s": fast, "naive_s": naive, "reference_naive_s": reference,
            "fast_equals_naive_on_completed_rows": bool(torch.equal(naive_rows, fast_rows))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the three training runs")
    parser.add_argument("--naive-rows", type=int, default=2, help="rows the naive samplers generate (scaled to 28)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--reference", default=str(REFERENCE))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ref = load_reference(args.reference)
    images = (torch.rand((args.warmup + args.steps) * args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.5).float()

    results = {"reference": [], "pygenbrix": [], "pygenbrix_no_validation": []}
    if not args.skip_train:
        for round in range(args.rounds):
            for name in results:
                if name == "reference": value, extra = train_reference(ref, images, args), {}
                else:
                    value, total = train_pygenbrix(images, args, validate=name == "pygenbrix")
                    extra = {"wall_s_including_lightning_startup": round_(total)}
                results[name].append(value)
                print(json.dumps({"round": round, "run": name, "train_img_per_s": round_(value), **extra}), flush=True)
    sampling = sample_times(ref, args)
    print(json.dumps({k: (round_(v) if isinstance(v, float) else v) for k, v in sampling.items()}), flush=True)
    median = {name: statistics.median(values) for name, values in results.items() if values}
    summary = {"channels": args.channels, "layers": args.layers, "batch": args.batch, "steps": args.steps,
               "rounds": args.rounds, "threads": torch.get_num_threads(), "torch": torch.__version__,
               **{f"train_img_per_s_{name}": round_(value) for name, value in median.items()}}
    if median:
        summary["train_ratio_pygenbrix_over_reference"] = round_(median["pygenbrix"] / median["reference"])
        summary["train_ratio_no_validation_over_reference"] = round_(median["pygenbrix_no_validation"] / median["reference"])
    summary.update({"sample16_fast_s": round_(sampling["fast_s"]), "sample16_naive_s": round_(sampling["naive_s"]),
                    "sample16_reference_naive_s": round_(sampling["reference_naive_s"]),
                    "sample_speedup_fast_over_naive": round_(sampling["naive_s"] / sampling["fast_s"]),
                    "naive_extrapolated_from_rows": args.naive_rows})
    print(json.dumps({"summary": summary}))
    return 0


def round_(x): return round(x, 3)


if __name__ == "__main__":
    sys.exit(main())

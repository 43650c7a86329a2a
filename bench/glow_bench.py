"""Glow benchmark: pygenbrix's `Glow` against normflows' Glow, the same model trained on the same MNIST batches in one run.

Both models are Glow (Kingma & Dhariwal 2018) with the same number of levels, steps per level, coupling-network width
and coupling (affine with sigmoid(h + 2) scales, or additive): ActNorm, an LU-parameterised invertible 1x1 convolution
and a coupling whose network is 3x3 conv - ReLU - 1x1 conv - ReLU - zero-initialised 3x3 conv (pygenbrix's, by default,
with its output scaled by a learned exp(3 log_scale), as Glow's), with a squeeze and a split at every level. normflows' model is built as in its Glow example (`nf.flows.GlowBlock` in `nf.MultiscaleFlow`),
with `nf.distributions.GlowBase` priors (a learned mean and scale per channel); pygenbrix's split priors are learned
functions of the kept half (Glow's own; a 1x1 convolution by default, Glow's 3x3 with --prior-kernel-size 3), so it has a
few more parameters, printed below.

The data are 8-bit MNIST digits padded to 32x32 (so that three levels divide the size). Both models see the same
batches with the same dequantisation noise: pygenbrix's `log_prob(x, noise=u)` and normflows' `log_prob((255 x + u)/256)`
minus D log 256 are the same quantity. Training alternates chunks of steps between the two models (the same Adam
settings, a plain loop for both), so that load from other processes falls on both alike; images/second is the median over
the chunks after the first (which holds the data-dependent initialisation). After training, both are scored on the same
test images with the same noise, in bits per dimension.

Needs normflows, a benchmark-only dependency:  pip install normflows

Usage:  python bench/glow_bench.py [--levels 3 --steps-per-level 8 --hidden-channels 128 --coupling affine --prior-kernel-size 1
                                    --coupling-actnorm --no-coupling-output-scale
                                    --batch-size 64 --train-steps 400 --chunk 20 --test-images 2000 --threads 1]
Prints one JSON line per chunk, a JSON summary, and a table with the ratios (pygenbrix / normflows).
"""
import argparse, json, math, statistics, sys, time, warnings

import torch

from pygenbrix.core import validation
from pygenbrix.data import MNIST, image_tensors
from pygenbrix.models.glow import Glow

try:
    import normflows as nf
except ImportError:
    nf = None

# normflows' LU decomposition calls torch.lu, which recent PyTorch warns about on every model built
warnings.filterwarnings("ignore", message=".*torch.lu is deprecated.*")


def normflows_glow(event_shape, levels, steps, hidden_channels, coupling):
    "Glow as normflows' example builds it: `levels` lists of GlowBlocks and a Squeeze, Merge between levels, GlowBase priors."
    channels, height, width = event_shape
    priors, merges, flows = [], [], []
    for level in range(levels):
        blocks = [nf.flows.GlowBlock(channels * 2 ** (levels + 1 - level), hidden_channels, split_mode="channel",
                                     scale=coupling == "affine", scale_map="sigmoid") for _ in range(steps)]
        flows.append(blocks + [nf.flows.Squeeze()])
        if level > 0:
            merges.append(nf.flows.Merge())
            latent = (channels * 2 ** (levels - level), height // 2 ** (levels - level), width // 2 ** (levels - level))
        else:
            latent = (channels * 2 ** (levels + 1), height // 2 ** levels, width // 2 ** levels)
        priors.append(nf.distributions.GlowBase(latent))
    return nf.MultiscaleFlow(priors, flows, merges, class_cond=False)


class Runner:
    "One model, its optimiser, and the function that gives the mean negative log-likelihood (nats) of a batch."
    def __init__(self, name, model, nll):
        self.name, self.model, self.nll = name, model, nll
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.seconds, self.rates, self.losses = [], [], []

    def train(self, batches, noises):
        self.model.train()
        start = time.perf_counter()
        for x, noise in zip(batches, noises):
            loss = self.nll(x, noise).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        last = loss.item()
        seconds = time.perf_counter() - start
        self.seconds.append(seconds); self.rates.append(sum(len(x) for x in batches) / seconds); self.losses.append(last)
        return seconds

    @torch.no_grad()
    def test_bits_per_dim(self, images, noise, batch_size=500):
        self.model.eval()
        total = sum(self.nll(x, u).sum().item() for x, u in zip(images.split(batch_size), noise.split(batch_size)))
        return total / len(images) / (images[0].numel() * math.log(2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps-per-level", type=int, default=8)
    parser.add_argument("--hidden-channels", type=int, default=128)
    parser.add_argument("--coupling", choices=("affine", "additive"), default="affine")
    parser.add_argument("--prior-kernel-size", type=int, default=1,
                        help="kernel of pygenbrix's split priors' convolutions of the kept half (1, its default; 3, Glow's)")
    parser.add_argument("--coupling-actnorm", action="store_true",
                        help="ActNorm in pygenbrix's coupling networks' hidden layers, as in Glow (`Glow(..., coupling_actnorm=True)`)")
    parser.add_argument("--coupling-output-scale", action=argparse.BooleanOptionalAction, default=True,
                        help="pygenbrix's coupling networks' zero-initialised output scaled by a learned exp(3 log_scale), as in Glow "
                             "(`Glow(..., coupling_output_scale=True)`, the default; --no-coupling-output-scale for the plain network)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=400, help="training steps of each model, the same batches for both")
    parser.add_argument("--chunk", type=int, default=20, help="steps per timed chunk; the two models alternate chunks")
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1,
                        help="math threads (default 1: on a 2-core machine shared with other jobs, two threads per process "
                             "oversubscribe the cores and run many times slower)")
    parser.add_argument("--no-validation", action="store_true", help="switch pygenbrix's value checks off (no device syncs)")
    parser.add_argument("--normflows-channels-last", action="store_true",
                        help="also train normflows' model with its convolutions in the channels-last layout, as pygenbrix's are")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if nf is None:
        print("glow_bench.py needs normflows, a benchmark-only dependency: pip install normflows", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    train_set = image_tensors(MNIST(split="train", pad_to_32=True, download=True))
    test_set = image_tensors(MNIST(split="test", pad_to_32=True))
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_set), generator=generator)
    steps = args.train_steps
    indices = torch.cat([order] * math.ceil(steps * args.batch_size / len(order)))[:steps * args.batch_size]
    images = train_set.batch(indices)[0].to(device)
    noises = torch.rand(images.shape, generator=generator).to(device)
    test_images = test_set.batch(torch.arange(args.test_images))[0].to(device)
    test_noise = torch.rand(test_images.shape, generator=generator).to(device)
    event_shape, dims = tuple(images.shape[1:]), images[0].numel()

    sizes = (args.levels, args.steps_per_level, args.hidden_channels, args.coupling)
    torch.manual_seed(args.seed)
    ours = Glow(event_shape, *sizes, prior_kernel_size=args.prior_kernel_size, coupling_actnorm=args.coupling_actnorm,
                coupling_output_scale=args.coupling_output_scale).to(device)
    runners = [Runner("pygenbrix", ours, lambda x, u: -ours.log_prob(x, noise=u)["log_prob"])]
    def normflows_runner(name, channels_last):
        torch.manual_seed(args.seed)
        model = normflows_glow(event_shape, *sizes).to(device)
        if channels_last: model = model.to(memory_format=torch.channels_last)
        return Runner(name, model, lambda x, u: -(model.log_prob((255 * x + u) / 256, None) - dims * math.log(256)))
    runners.append(normflows_runner("normflows", False))
    if args.normflows_channels_last: runners.append(normflows_runner("normflows_channels_last", True))
    parameters = {runner.name: sum(p.numel() for p in runner.model.parameters()) for runner in runners}
    print(json.dumps({"parameters": parameters, "event_shape": list(event_shape), "device": str(device)}), flush=True)

    with validation(not args.no_validation):
        for start in range(0, steps, args.chunk):
            chunk = slice(start, min(start + args.chunk, steps))
            batches = images[chunk.start * args.batch_size:chunk.stop * args.batch_size].split(args.batch_size)
            batch_noises = noises[chunk.start * args.batch_size:chunk.stop * args.batch_size].split(args.batch_size)
            for runner in runners:
                runner.train(batches, batch_noises)
                print(json.dumps({"steps": chunk.stop, "run": runner.name, "img_per_s": round(runner.rates[-1], 2),
                                  "train_bits_per_dim": round(runner.losses[-1] / (dims * math.log(2)), 4)}), flush=True)
        test = {runner.name: runner.test_bits_per_dim(test_images, test_noise) for runner in runners}

    timed = {runner.name: runner.rates[1:] or runner.rates for runner in runners}
    rates = {name: statistics.median(values) for name, values in timed.items()}
    summary = {"levels": args.levels, "steps_per_level": args.steps_per_level, "hidden_channels": args.hidden_channels,
               "coupling": args.coupling, "prior_kernel_size": args.prior_kernel_size,
               "coupling_actnorm": args.coupling_actnorm, "coupling_output_scale": args.coupling_output_scale, "batch_size": args.batch_size, "train_steps": steps, "chunk": args.chunk,
               "test_images": args.test_images, "threads": torch.get_num_threads(), "device": str(device),
               "validation": not args.no_validation, "torch": torch.__version__, "normflows": nf.__version__,
               "parameters": parameters,
               **{f"train_img_per_s_{name}": round(value, 2) for name, value in rates.items()},
               **{f"test_bits_per_dim_{name}": round(value, 4) for name, value in test.items()},
               "speed_ratio_pygenbrix_over_normflows": round(rates["pygenbrix"] / rates["normflows"], 3),
               "bits_per_dim_ratio_pygenbrix_over_normflows": round(test["pygenbrix"] / test["normflows"], 4)}
    print(json.dumps({"summary": summary}))
    print(f"\n{'model':26} {'parameters':>11} {'train img/s':>12} {'test bits/dim':>14}   (median of {len(timed['pygenbrix'])} chunks "
          f"of {args.chunk} steps; {steps} steps of {args.batch_size}; {args.test_images} test images)")
    for runner in runners:
        print(f"{runner.name:26} {parameters[runner.name]:>11,} {rates[runner.name]:>12.1f} {test[runner.name]:>14.4f}")
    print(f"{'pygenbrix / normflows':26} {'':>11} {summary['speed_ratio_pygenbrix_over_normflows']:>12.3f} "
          f"{summary['bits_per_dim_ratio_pygenbrix_over_normflows']:>14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What pygenbrix's value checks cost: time per training step with `Distribution.set_default_validate_args` on and off.

Value checks read tensor contents back to the host (finite parameters, a scale above 0, values in the support). On a
CPU that is a little arithmetic; on a GPU each check is also a device synchronisation: the host waits for every queued
kernel to finish before it can test the result, and the GPU then idles until the host queues the next kernel. This
script trains a few models for the same steps on the same batches with the checks on and off, in interleaved rounds
(the machine may be shared), and prints the median time per step, the ratio on/off, and how many operations of one
step read values back (counted with `pygenbrix.core.device_syncs`: each is one synchronisation on a GPU).

    python bench/validate_args_bench.py                       # CPU, torch's default threads
    python bench/validate_args_bench.py --threads 1 --rounds 5
    python bench/validate_args_bench.py --device cuda         # on a GPU, where the syncs cost most
    python bench/validate_args_bench.py --only MNISTVAE --rounds 7

Prints one JSON line per measurement and a final JSON summary.
"""
import argparse, json, statistics, sys, time

import torch

from pygenbrix.core import PyGenBrixModel, device_syncs, validation
from pygenbrix.layers.bernoulli import IndependentBernoulliLayer
from pygenbrix.models.parallelcnn import MultiStageParallelCNN
from pygenbrix.models.pixelcnn import BernoulliPixelCNN
from pygenbrix.models.vae import MNISTVAE


def models(args):
    "The models timed, by name: each a function that builds it for [1, 28, 28] binary images."
    return {
        "independent pixels": lambda: PyGenBrixModel(IndependentBernoulliLayer(), [1, 28, 28]),
        "PixelCNN (gated, 16 channels, 3 layers)": lambda: BernoulliPixelCNN([1, 28, 28], channels=16, layers=3, gated=True),
        "parallel CNN (2 stages, 32 channels)": lambda: MultiStageParallelCNN([1, 28, 28], IndependentBernoulliLayer(),
                                                                              upsampling_stages=2, hidden_channels=32, num_blocks=2),
        "MNISTVAE (Bernoulli pixels)": lambda: MNISTVAE(IndependentBernoulliLayer()),
    }


def synchronize(device):
    if str(device).startswith("cuda"): torch.cuda.synchronize()


def seconds_per_step(build, batches, checks: bool, args) -> float:
    "Median seconds of one Adam step (after warm-up) with the value checks on or off."
    torch.manual_seed(0)
    model = build().to(args.device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    with validation(checks):
        for index, batch in enumerate(batches):
            synchronize(args.device)
            start = time.perf_counter()
            optimiser.zero_grad(set_to_none=True)
            (-model.log_prob(batch)["log_prob"].mean()).backward()
            optimiser.step()
            synchronize(args.device)
            if index >= args.warmup: times.append(time.perf_counter() - start)
    return statistics.median(times)


def syncs_per_step(build, batch, checks: bool, args) -> int:
    "How many operations of one training step read a value back to the host."
    model = build().to(args.device)
    with validation(checks):
        return len(device_syncs(lambda: (-model.log_prob(batch)["log_prob"].mean()).backward()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model, round and setting")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of checks on and off")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=None, help="time only the models whose name contains this text")
    args = parser.parse_args(argv)
    if args.threads: torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    batches = [torch.bernoulli(torch.full((args.batch_size, 1, 28, 28), 0.2), generator=generator).to(args.device)
               for _ in range(args.warmup + args.steps)]
    summary = {"device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
               "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds, "models": {}}
    for name, build in models(args).items():
        if args.only is not None and args.only not in name: continue
        timings = {True: [], False: []}
        for repeat in range(args.rounds):
            for checks in ((True, False) if repeat % 2 == 0 else (False, True)):  # alternate which goes first
                value = seconds_per_step(build, batches, checks, args)
                timings[checks].append(value)
                print(json.dumps({"model": name, "round": repeat, "checks": checks, "ms_per_step": round_(1000 * value)}), flush=True)
        on, off = statistics.median(timings[True]), statistics.median(timings[False])
        summary["models"][name] = {"ms_per_step_checks_on": round_(1000 * on), "ms_per_step_checks_off": round_(1000 * off),
                                   "ratio_on_over_off": round_(on / off),
                                   "reads_per_step_checks_on": syncs_per_step(build, batches[0], True, args),
                                   "reads_per_step_checks_off": syncs_per_step(build, batches[0], False, args)}
    print(json.dumps({"summary": summary}))
    return 0


def round_(x): return round(x, 3)


if __name__ == "__main__":
    sys.exit(main())

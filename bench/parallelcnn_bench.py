"""Sampling time of the multi-stage parallel CNN against a PixelCNN trained with the same budget, on binarised MNIST.

Three models: the parallel CNN with its independent-pixel base, the same with a small PixelCNN as its base
(`base_layer`), and a PixelCNN. Each is trained for the same number of Adam steps on the same batches of thresholded
MNIST digits, then scored on test digits (NLL in nats per image) and timed drawing 16 samples (median of several runs
after a warm-up). The PixelCNN is timed with its cached sampler and with the naive one.

    python bench/parallelcnn_bench.py                      # full size on a GPU
    python bench/parallelcnn_bench.py --steps 200 --small  # a short run on a CPU
"""
import argparse, statistics, time
import torch
from pygenbrix.core import PyGenBrixModel
from pygenbrix.data import MNIST
from pygenbrix.layers.bernoulli import IndependentBernoulliLayer
from pygenbrix.metrics import evaluate_nll
from pygenbrix.models.parallelcnn import MultiStageParallelCNNLayer
from pygenbrix.models.pixelcnn import BernoulliPixelCNN, PixelCNNLayer

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="training steps of each model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--upsampling-stages", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="small networks, for a CPU")
    parser.add_argument("--test-images", type=int, default=10000, help="test digits scored")
    parser.add_argument("--num-samples", type=int, default=16, help="images drawn per timed sampling call")
    parser.add_argument("--repeats", type=int, default=3, help="timed sampling calls per model (the median is reported)")
    parser.add_argument("--no-naive", action="store_true", help="skip timing the PixelCNN without activation caching")
    parser.add_argument("--no-pixelcnn-base", action="store_true", help="skip the parallel CNN with a PixelCNN base")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data", default=None, help="data root (default: $PYGENBRIX_DATA)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()

def build_models(args):
    network_size = dict(hidden_channels=32, num_blocks=2) if args.small else dict(hidden_channels=64, num_blocks=4)
    parallel = lambda base_layer=None: PyGenBrixModel(MultiStageParallelCNNLayer(
        [1, 28, 28], IndependentBernoulliLayer(), args.upsampling_stages, base_layer=base_layer, **network_size), [1, 28, 28])
    models = {"parallel CNN": parallel()}
    if not args.no_pixelcnn_base:
        base_size = 28 >> args.upsampling_stages
        models["parallel, PixelCNN base"] = parallel(PixelCNNLayer([1, base_size, base_size], IndependentBernoulliLayer(), [4, base_size, base_size],
                                                                   **(dict(channels=32, layers=3) if args.small else dict(channels=64, layers=4))))
    models["PixelCNN"] = BernoulliPixelCNN([1, 28, 28], **({"channels": 32, "layers": 4} if args.small else {}))
    return {name: model.to(args.device) for name, model in models.items()}

def train(model, images, args):
    "Adam on the mean negative log-likelihood; the same batch sequence for every model (same seed)."
    generator = torch.Generator().manual_seed(args.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    model.train()
    start = time.perf_counter()
    for _ in range(args.steps):
        batch = images[torch.randint(len(images), (args.batch_size,), generator=generator)].to(args.device)
        optimiser.zero_grad()
        loss = -model.log_prob(batch)["log_prob"].mean()
        loss.backward()
        optimiser.step()
    synchronize(args.device)
    return time.perf_counter() - start

def synchronize(device):
    if str(device).startswith("cuda"): torch.cuda.synchronize()

def sampling_seconds(model, args, repeats=None, warm_up=True, **options) -> float:
    "The median time to draw `num_samples` images, after one warm-up call."
    model.eval()
    times = []
    for repeat in range(args.repeats if repeats is None else repeats):
        if warm_up and not repeat: model.sample([args.num_samples], **options)
        synchronize(args.device)
        start = time.perf_counter()
        samples = model.sample([args.num_samples], **options)
        synchronize(args.device)
        times.append(time.perf_counter() - start)
    assert samples.shape == (args.num_samples, 1, 28, 28)
    return statistics.median(times)

def main():
    args = parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_set = MNIST(args.data, split="train", binarize="threshold")
    test_set = torch.utils.data.Subset(MNIST(args.data, split="test", binarize="threshold"), range(args.test_images))
    images = torch.stack([train_set[i][0] for i in range(len(train_set))])
    print(f"device {args.device}; {args.steps} steps of batch {args.batch_size} per model; "
          f"{args.upsampling_stages} upsampling stages; {'small' if args.small else 'full-size'} networks; {torch.get_num_threads()} threads")
    results = {}
    for name, model in build_models(args).items():
        torch.manual_seed(args.seed)
        seconds = train(model, images, args)
        nll = evaluate_nll(model, test_set)["nats"]
        result = {"parameters": sum(p.numel() for p in model.parameters()), "training_s": seconds, "nll": nll}
        if name == "PixelCNN":
            results["PixelCNN (fast)"] = {**result, "sampling_s": sampling_seconds(model, args, method="fast")}
            if not args.no_naive:  # one draw: a full network pass per pixel is slow
                results["PixelCNN (naive)"] = {**result, "sampling_s": sampling_seconds(model, args, 1, False, method="naive")}
        else: results[name] = {**result, "sampling_s": sampling_seconds(model, args)}
    base_pixels = (28 >> args.upsampling_stages) ** 2
    rounds = {"parallel CNN": 1 + 3 * args.upsampling_stages, "parallel, PixelCNN base": base_pixels + 3 * args.upsampling_stages,
              "PixelCNN (fast)": 784, "PixelCNN (naive)": 784}
    print(f"{'model':24s} {'parameters':>10s} {'training s':>10s} {'test NLL (nats)':>16s} {'rounds':>7s} "
          f"{f'sample {args.num_samples} (s)':>14s} {'fast PixelCNN / it':>19s} {'naive / it':>11s}")
    for name, r in results.items():
        ratio = lambda baseline: f"{results[baseline]['sampling_s'] / r['sampling_s']:.3g}x" if baseline in results else "-"
        print(f"{name:24s} {r['parameters']:10d} {r['training_s']:10.1f} {r['nll']:16.2f} {rounds[name]:7d} {r['sampling_s']:14.4f} "
              f"{ratio('PixelCNN (fast)'):>19s} {ratio('PixelCNN (naive)'):>11s}")
    print(f"rounds: sequential rounds of network calls per image; the last two columns: how many times faster than "
          f"the PixelCNN's cached (fast) and naive samplers each model draws {args.num_samples} images")

if __name__ == "__main__":
    main()

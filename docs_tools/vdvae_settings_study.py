"""The study behind the settings of the small VDVAE in `nbs/tutorials/mnist_vdvae.ipynb`.

Each run trains the tutorial's small VDVAE (docs-budget optimiser and stability settings, 60,000 dynamically binarised
MNIST digits, batches of 64, one CPU thread) with one change, then reports the test ELBO and KL per resolution on 1,000
test digits binarised once, and how digit-like 400 samples are at each temperature: the share that a small digit
classifier calls one digit with probability at least 0.9, and the effective number of digits among them (the
exponential of the entropy of its mean prediction). The runs are shortened to 2 epochs with a moving average of decay
0.99 (the tutorial's 0.998 averages over too few steps in 2 epochs to compare settings).

    python docs_tools/vdvae_settings_study.py NAME 'JSON'   # e.g. base '{}', or top '{"spec": "28x1,14x2,7x2,1x3"}'

JSON keys: epochs (2), ema (0.99), spec, width, latent_channels, lr, warmup_kl (KL weight rising from 0 to 1 over that
many steps), free_bits (each resolution's batch-mean KL counted as at least that many nats). Prints one line: the name,
the settings, the training seconds and the scores as JSON.
"""
import json, math, sys, tempfile, time
from pathlib import Path
import torch
from torch import nn
import torch.nn.functional as F
from pygenbrix.core import log_prob_dict
from pygenbrix.data import MNIST, freeze_binarization
from pygenbrix.layers.bernoulli import IndependentBernoulliLayer
from pygenbrix.metrics import DistributionObjective
from pygenbrix.models.vdvae import VDVAE
from pygenbrix.train import ModelTrainer

CLASSIFIER = Path(tempfile.gettempdir())/"pygenbrix-vdvae-study-classifier.pt"

def digit_classifier() -> nn.Module:
    "A small CNN trained for 2 epochs on the grey MNIST digits (98% test accuracy), cached in the temporary folder."
    if CLASSIFIER.exists(): return torch.load(CLASSIFIER, weights_only=False).eval()
    torch.manual_seed(0)
    train = MNIST(split="train", download=True)
    x, y = torch.stack([train[i][0] for i in range(len(train))]), torch.tensor([int(train[i][1]) for i in range(len(train))])
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64*49, 128), nn.ReLU(), nn.Linear(128, 10))
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    for epoch in range(2):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            index = order[i:i+128]
            loss = F.cross_entropy(net(x[index]), y[index]); optimiser.zero_grad(); loss.backward(); optimiser.step()
    torch.save(net, CLASSIFIER)
    return net.eval()

class KLWarmup:
    "In training, the ELBO with the KL weighted by a factor rising linearly from 0 to 1 over `steps` steps; in evaluation, the ELBO."
    def __init__(self, steps): self.steps, self.calls = steps, 0
    def __call__(self, model, batch):
        result = log_prob_dict(model.log_prob(batch[0]))
        if model.training:
            weight = min(1., self.calls / self.steps); self.calls += 1
            result = {**result, "elbo": result["log_prob"], "log_prob": result["recon_log_prob"] - weight*result["kl"]}
        return result
    def modelled(self, batch): return batch[0]
    def sample(self, model, n, temperature=1.0, dataset=None): return model.sample([n], temperature=temperature)

class FreeBits:
    "In training, the ELBO with each resolution's batch-mean KL counted as at least `nats` (Kingma et al. 2016); in evaluation, the ELBO."
    def __init__(self, nats): self.nats = nats
    def __call__(self, model, batch):
        result = log_prob_dict(model.log_prob(batch[0]))
        if model.training:
            kl = sum(torch.clamp(v.mean(), min=self.nats) + (v - v.mean()) for k, v in result.items() if k.startswith("kl/"))
            result = {**result, "elbo": result["log_prob"], "log_prob": result["recon_log_prob"] - kl}
        return result
    def modelled(self, batch): return batch[0]
    def sample(self, model, n, temperature=1.0, dataset=None): return model.sample([n], temperature=temperature)

def main(name:str, settings:dict):
    torch.set_num_threads(1)
    train_set = torch.utils.data.Subset(MNIST(split="train", binarize="dynamic", download=True), range(60000))
    test = freeze_binarization(torch.utils.data.Subset(MNIST(split="test", binarize="dynamic"), range(1000)), seed=0).tensors[0]
    torch.manual_seed(0)
    model = VDVAE.mnist(IndependentBernoulliLayer(), spec=settings.get("spec", "28x1,14x2,7x2,1x1"), width=settings.get("width", 32),
                        latent_channels=settings.get("latent_channels", 8), bottleneck_multiple=0.5)
    objective = (KLWarmup(settings["warmup_kl"]) if "warmup_kl" in settings else FreeBits(settings["free_bits"]) if "free_bits" in settings
                 else DistributionObjective())
    start = time.time()
    ModelTrainer(model, train_set, objective, max_epochs=settings.get("epochs", 2), batch_size=64, learning_rate=settings.get("lr", 2e-3),
                 optimizer="adamw", schedule="warmup", warmup_steps=100, gradient_clip_val=200., skip_threshold=2000.,
                 ema_decay=settings.get("ema", 0.99), data_on_device=True, seed=0, log_dir=tempfile.mkdtemp(), enable_progress_bar=False,
                 enable_model_summary=False).train()
    seconds = time.time() - start
    model.eval(); totals = {}
    with torch.no_grad():
        for batch in test.split(100):
            for key, value in model.log_prob(batch).items(): totals[key] = totals.get(key, 0.) + value.sum().item()
    scores = {key: round(value/len(test), 2) for key, value in totals.items() if key in ("log_prob", "kl") or key.startswith("kl/")}
    classifier = digit_classifier()
    torch.manual_seed(0)
    for temperature in (0.4, 0.6, 0.8, 1.0):
        with torch.no_grad(): probabilities = classifier(model.top_down(num_samples=400, temperature=temperature)[0].mean).softmax(1)
        spread = probabilities.mean(0)
        scores[f"T{temperature}"] = (round((probabilities.max(1).values >= 0.9).float().mean().item(), 3),
                                     round(math.exp(-(spread*spread.log()).sum().item()), 2))
    print(name, settings, f"{seconds:.0f}s", json.dumps(scores), flush=True)

if __name__ == "__main__": main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})

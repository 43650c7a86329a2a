"""Train every model family a few steps with Lightning's DDP on two CPU processes; each process saves its model's state_dict.

Run by `tests/test_ddp.py` as `python tests/ddp_replicas.py OUTPUT_DIR`. Lightning's "ddp" strategy starts the second process
by running this script again. Each process builds its models from a seed of its own (DDP must make them agree when it wraps
them) and trains on its own share of the digits; the files `<family>_rank<r>.pt` are compared by the test.
"""
import logging, os, sys, tempfile, warnings
from pathlib import Path

import torch

from pygenbrix.data import Digits
from pygenbrix.layers.bernoulli import IndependentBernoulliLayer
from pygenbrix.models.glow import Glow
from pygenbrix.models.parallelcnn import MultiStageParallelCNN
from pygenbrix.models.pixelcnn import BernoulliPixelCNN
from pygenbrix.models.vae import ConvVAE
from pygenbrix.models.vdvae import VDVAE
from pygenbrix.train import DistributionTrainer

SHAPE = [1, 8, 8]
FAMILIES = {  # name: (the model, whether it models binarised digits)
    "pixelcnn": (lambda: BernoulliPixelCNN(SHAPE, channels=8, layers=2), True),
    "parallelcnn": (lambda: MultiStageParallelCNN(SHAPE, IndependentBernoulliLayer(), upsampling_stages=1, hidden_channels=8, num_blocks=1), True),
    "vae": (lambda: ConvVAE(IndependentBernoulliLayer(), SHAPE, latent_dim=2, channels=(4,), hidden_size=16), True),
    # ActNorm in the steps and in the coupling networks: both are set from the first batch
    "glow": (lambda: Glow(SHAPE, num_levels=2, steps_per_level=2, hidden_channels=8, num_bits=None, quantization_levels=17,
                          coupling_actnorm=True), False),
    "vdvae": (lambda: VDVAE(SHAPE, IndependentBernoulliLayer(), spec="8x1,4x1,1x1", width=8, latent_channels=2), True),
}


def main(output_dir):
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning_fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rank = int(os.environ.get("LOCAL_RANK", 0))  # set by Lightning in the process it starts; 0 in the first
    families = sys.argv[2].split(",") if len(sys.argv) > 2 else list(FAMILIES)
    for name in families:
        build, binary = FAMILIES[name]
        torch.manual_seed(100 + rank)  # replicas that start apart: DDP must broadcast rank 0's parameters and buffers
        model = build()
        trainer = DistributionTrainer(model, Digits("train", binarize="dynamic" if binary else None), batch_size=32, max_epochs=1,
                                      limit_train_batches=3, limit_val_batches=0, accelerator="cpu", devices=2, strategy="ddp",
                                      log_dir=tempfile.mkdtemp(), logger=False, sample_grid=False, log_graph=False,
                                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False).train()
        torch.save(model.state_dict(), Path(output_dir) / f"{name}_rank{trainer.trainer.global_rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])

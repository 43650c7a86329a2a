"""Replicas stay identical under DDP: every model family trained with two CPU processes ends with equal parameters and buffers.

Data-dependent initialisation (Glow's ActNorm, set from the first batch) runs in each process on its own batch; unless the
statistics are combined across processes, the replicas start, and stay, apart.
"""
import os, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from ddp_replicas import FAMILIES  # noqa: E402


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    "Each family's state_dict in each of the two processes: {family: [rank 0's, rank 1's]}."
    output = tmp_path_factory.mktemp("ddp")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_replicas.py"), str(output)], cwd=output, env=environment,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return {name: [torch.load(output / f"{name}_rank{rank}.pt", weights_only=True) for rank in (0, 1)] for name in FAMILIES}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_replicas_identical(replicas, family):
    rank0, rank1 = replicas[family]
    assert list(rank0) == list(rank1)
    different = {key: (rank0[key].double() - rank1[key].double()).abs().max().item() if rank0[key].is_floating_point() else "differs"
                 for key in rank0 if not torch.equal(rank0[key], rank1[key])}
    assert not different, f"{family}: the two processes hold different values of {different}"


def test_training_moved_the_parameters(replicas):
    "The replicas are equal after training, not because nothing trained: Glow's ActNorm left its initial scale of 1."
    glow = replicas["glow"][0]
    log_scales = [value for key, value in glow.items() if key.endswith("actnorm.log_scale")]
    assert log_scales and all(value.abs().max() > 0 for value in log_scales)

"""GPU paths (marked ``gpu``; run with ``pytest -m gpu`` on a machine with CUDA).

Every model trains a step and evaluates on the GPU, and matches its CPU numbers in float64.
"""

from __future__ import annotations

import pytest
import torch

from memorybench import memories
from memorybench.memories.conformance import build, episode

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
@pytest.mark.parametrize("name", memories.available())
def test_model_runs_on_cuda_and_matches_cpu(name: str) -> None:
    cpu_model = build(name).eval()
    gpu_model = build(name).eval().cuda()
    x = episode()
    with torch.no_grad():
        torch.manual_seed(0)
        cpu = cpu_model.read(x, cpu_model.write(x)).mean
        torch.manual_seed(0)
        gpu = gpu_model.read(x.cuda(), gpu_model.write(x.cuda())).mean.cpu()
    assert torch.allclose(cpu, gpu, atol=1e-6)
    gpu_model.train()
    gpu_model.loss(x.cuda()).total.backward()
    assert all(p.grad is None or p.grad.is_cuda for p in gpu_model.parameters())


@needs_cuda
def test_trainer_picks_cuda_automatically() -> None:
    from memorybench.benchmarks.common.trainer import pick_device

    assert pick_device().type == "cuda"

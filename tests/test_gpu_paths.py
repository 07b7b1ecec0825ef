"""The GPU paths give the CPU's answers: faiss-gpu searches and the batched CUDA solver.

Marked ``gpu``: the default run deselects them; ``pytest -m gpu`` on a machine with a CUDA
device (and, for FAISS, the ``gpu`` extra) runs them, and they skip cleanly without one.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("factory", ["Flat", "IVF64,Flat"])
def test_faiss_gpu_search_matches_cpu(factory):
    import faiss

    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() <= 0:
        pytest.skip("faiss-gpu with a visible GPU is not installed")
    from earmark.index.dense import DenseIndex

    x = _unit(5000, 64, 0)
    ids = np.arange(5000, dtype=np.int64) * 3 + 1
    idx = DenseIndex.rebuild(ids, x, factory, recall_target=None)
    q = _unit(20, 64, 1)
    scores, got = idx.search(q, 10)  # unfiltered: served by the GPU copy
    assert idx._gpu is not None, "the unfiltered search did not use the GPU"
    params = idx._params(None, exhaustive=False)
    cpu_scores, cpu_got = idx.faiss_index.search(q, 10, params=params)
    assert (got == cpu_got).mean() > 0.98
    np.testing.assert_allclose(scores, cpu_scores, atol=1e-4)


def test_cuda_solver_matches_the_cpu_kernel():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from earmark.engine.concepts.solver import prepare, solve_active_set

    atoms = torch.from_numpy(_unit(400, 64, 2))
    z = torch.from_numpy(_unit(64, 64, 3))
    cpu = solve_active_set(prepare(atoms), z, 0.1, method="kernel")
    gpu = solve_active_set(prepare(atoms, "cuda"), z.cuda(), 0.1, method="torch")
    gpu = gpu.cpu()
    assert torch.equal(cpu > 0, gpu > 0)
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=1e-3)


def test_fit_trains_on_the_gpu_like_on_the_cpu():
    """`fit` trains on the model's device (train_encoder moves it to CUDA when present); the
    features stay in host memory. Same data and seed: the two devices' losses track each other."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from earmark.engine.encoders.embedded_model import EmbeddedClap, ModelConfig
    from earmark.engine.training.train import TrainConfig, fit
    from test_everyday import _tiny_set

    fs, text = _tiny_set(64)
    cfg = TrainConfig(epochs=20, batch_size=16, threads=1, positive_similarity=0.5, label_softmax_weight=1.0,
                      package_adversary_weight=0.0)
    losses = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = EmbeddedClap(ModelConfig()).to(device)
        losses[device] = fit(model, fs, np.arange(64), text, cfg, progress=False)
        assert next(model.parameters()).device.type == device
    assert losses["cuda"][-1] < losses["cuda"][0]
    np.testing.assert_allclose(np.mean(losses["cuda"][-10:]), np.mean(losses["cpu"][-10:]), rtol=0.1)

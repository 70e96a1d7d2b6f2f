"""Frozen-feature evaluation: kNN against a brute-force reference, and it leaves torch's thread count alone."""

import numpy as np
import torch
from paperkit.evaluation import knn_accuracy


def test_knn_matches_brute_force_cosine_majority_vote():
    rng = np.random.default_rng(0)
    xtr, xte = rng.normal(size=(200, 8)), rng.normal(size=(50, 8))
    ytr, yte = rng.integers(0, 3, 200), rng.integers(0, 3, 50)
    a = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    b = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    nn = np.argsort(-(b @ a.T), axis=1)[:, :5]
    pred = np.array([np.bincount(ytr[row], minlength=3).argmax() for row in nn])
    assert knn_accuracy(xtr, ytr, xte, yte, k=5) == float((pred == yte).mean())


def _omp_threads() -> str:
    # what torch's parallel regions will use (torch.get_num_threads() can read its own cached setting)
    info = torch.__config__.parallel_info()
    return [line.split(":")[-1].strip() for line in info.splitlines() if "at::get_num_threads()" in line][0]


def test_knn_restores_torchs_threads():
    """faiss and torch share the OpenMP runtime: faiss.omp_set_num_threads(1) used to leave a --threads 2 run
    on one thread after its first kNN."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.ones(512, 512) @ torch.ones(512, 512)  # torch's OpenMP pool is up, as in a training run
        x = np.random.default_rng(1).normal(size=(30, 4))
        knn_accuracy(x, np.arange(30) % 2, x, np.arange(30) % 2, k=3, threads=1)
        assert _omp_threads() == "2"
    finally:
        torch.set_num_threads(before)

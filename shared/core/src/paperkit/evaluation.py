"""Evaluation of frozen embeddings: a linear probe and a k-nearest-neighbour classifier (faiss).

Both take features as arrays or tensors ``[N, d]`` and integer labels ``[N]``, and return test accuracy in
[0, 1]. Shared by the self-supervised packages (ema-scale's BYOL, polyview, ewc-ssl).
"""

from __future__ import annotations

import numpy as np


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x))


def linear_probe(train_x, train_y, test_x, test_y, *, c: float = 1.0, max_iter: int = 2000) -> float:
    """Multinomial logistic regression on standardised frozen features; returns test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, xte = _np(train_x).astype(np.float64), _np(test_x).astype(np.float64)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(scaler.transform(xtr), _np(train_y))
    return float((clf.predict(scaler.transform(xte)) == _np(test_y)).mean())


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 20, threads: int = 1) -> float:
    """Cosine-similarity kNN with majority vote (exact search with faiss ``IndexFlatIP``) on ``threads`` threads.

    faiss and torch share one OpenMP runtime: setting faiss's threads would also change torch's for the rest of
    the run, so both are restored afterwards."""
    import sys

    import faiss

    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    faiss_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return _knn(faiss, train_x, train_y, test_x, test_y, k)
    finally:
        faiss.omp_set_num_threads(faiss_threads)
        if torch is not None:
            torch.set_num_threads(torch_threads)


def _knn(faiss, train_x, train_y, test_x, test_y, k: int) -> float:
    xtr, xte = _np(train_x).astype(np.float32), _np(test_x).astype(np.float32)
    faiss.normalize_L2(xtr)
    faiss.normalize_L2(xte)
    index = faiss.IndexFlatIP(xtr.shape[1])
    index.add(xtr)
    k = min(k, xtr.shape[0])
    _, nn_idx = index.search(xte, k)
    ytr = _np(train_y).astype(np.int64)
    votes = ytr[nn_idx]
    n_classes = int(ytr.max()) + 1
    counts = np.zeros((votes.shape[0], n_classes), dtype=np.int64)
    np.add.at(counts, (np.arange(votes.shape[0])[:, None], votes), 1)
    return float((counts.argmax(1) == _np(test_y)).mean())

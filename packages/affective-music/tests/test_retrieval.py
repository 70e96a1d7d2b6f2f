"""faiss retrieval: exact search equals torch top-k; precision/AP closed forms; HNSW and IVF against exact."""

import numpy as np
import pytest
from affective_music import retrieval


def data(n=600, q=50, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((3, d)) * 2
    lb, lq = rng.integers(0, 3, n), rng.integers(0, 3, q)
    xb = retrieval.normalize(centers[lb] + rng.standard_normal((n, d)))
    xq = retrieval.normalize(centers[lq] + rng.standard_normal((q, d)))
    return xq, lq, xb, lb


def test_faiss_exact_equals_torch_topk():
    xq, _, xb, _ = data()
    s, ids = retrieval.search(retrieval.build_index("exact", xb), xq, 10)
    ts, tids = retrieval.torch_topk(xq, xb, 10)
    assert np.array_equal(ids, tids)
    np.testing.assert_allclose(s, ts, atol=1e-5)


def test_precision_and_average_precision_closed_forms():
    ids = np.array([[0, 1, 2, 3]])
    db = np.array([1, 0, 1, 1])  # relevance for query label 1: [1, 0, 1, 1]
    assert retrieval.precision_at_k(ids, [1], db) == 0.75
    # AP = (1/1 + 2/3 + 3/4) / 3
    assert retrieval.average_precision(ids, [1], db) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert retrieval.average_precision(ids[:, :2], [1], db) == pytest.approx(1 / 2)  # AP@2: min(2, 3) = 2
    assert retrieval.recall_at_k(np.array([[3, 1, 9]]), np.array([[1, 2, 3]])) == pytest.approx(2 / 3)


def test_ivf_with_every_list_probed_is_exact_and_hnsw_is_close():
    xq, lq, xb, lb = data()
    out = retrieval.evaluate(xq, lq, xb, lb, k=10, nlist=8, nprobe=8)
    assert out["ivf"]["recall@10"] == 1.0
    assert out["hnsw"]["recall@10"] > 0.9
    assert out["exact"]["recall@10"] == 1.0
    assert out["exact"]["precision@10"] > 0.9  # well-separated clusters
    assert 0 < out["exact"]["map"] <= 1


def test_random_embeddings_retrieve_at_chance():
    rng = np.random.default_rng(1)
    xb, lb = rng.standard_normal((3000, 8)), rng.integers(0, 3, 3000)
    xq, lq = rng.standard_normal((300, 8)), rng.integers(0, 3, 300)
    out = retrieval.evaluate(xq, lq, xb, lb, k=10, kinds=("exact",))
    assert abs(out["exact"]["precision@10"] - 1 / 3) < 0.04


def test_unknown_index():
    with pytest.raises(ValueError, match="unknown index"):
        retrieval.build_index("lsh", np.zeros((4, 2), np.float32))

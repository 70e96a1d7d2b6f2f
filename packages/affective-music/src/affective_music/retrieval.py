"""Cross-modal retrieval with faiss: exact inner-product search, HNSW and IVF, scored by emotion.

Embeddings are L2-normalised, so inner product is cosine similarity (the ACP-cos score). A retrieved item is
*relevant* when it carries the query's emotion label::

    index = build_index("hnsw", images_emb)                 # or "exact", "ivf"
    _, ids = search(index, music_emb, k=10)
    precision_at_k(ids, music_labels, image_labels)         # chance: the share of each label in the database

``recall_at_k(ids, exact_ids)`` measures an approximate index against exact search (the same k).
"""

from __future__ import annotations

import numpy as np
import torch

INDEXES = ("exact", "hnsw", "ivf")


def _f32(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def normalize(x) -> np.ndarray:
    x = _f32(x).copy()
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def build_index(
    kind: str,
    database,
    *,
    hnsw_m: int = 32,
    ef_search: int = 64,
    ef_construction: int = 40,
    nlist: int | None = None,
    nprobe: int = 8,
    threads: int = 1,
    seed: int = 0,
):
    """A faiss index over the (already normalised) ``database`` rows, inner-product metric.

    ``exact``: ``IndexFlatIP``. ``hnsw``: ``IndexHNSWFlat(d, hnsw_m, METRIC_INNER_PRODUCT)`` searched with
    ``ef_search``. ``ivf``: ``IndexIVFFlat`` over a flat quantizer with ``nlist`` lists (default ``4 sqrt(N)``,
    at most ``N / 39``: k-means wants 39 points per centroid), trained by k-means on the database, searched with
    ``nprobe`` lists."""
    import faiss

    faiss.omp_set_num_threads(threads)
    xb = _f32(database)
    d = xb.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = nlist or max(1, min(len(xb) // 39, int(4 * np.sqrt(len(xb)))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(xb)
        index.nprobe = min(nprobe, nlist)
    else:
        raise ValueError(f"unknown index {kind!r}; expected one of {INDEXES}")
    index.add(xb)
    return index


def search(index, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` of the ``k`` best database rows for each query row."""
    return index.search(_f32(queries), k)


def torch_topk(queries, database, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k by a torch matmul: the reference for ``exact``."""
    s = torch.from_numpy(_f32(queries)) @ torch.from_numpy(_f32(database)).T
    v, i = torch.topk(s, k, dim=1)
    return v.numpy(), i.numpy()


def relevance(ids: np.ndarray, query_labels, db_labels) -> np.ndarray:
    q, d = np.asarray(query_labels), np.asarray(db_labels)
    return d[ids] == q[:, None]


def precision_at_k(ids: np.ndarray, query_labels, db_labels) -> float:
    """Mean share of the retrieved ``ids[:, :k]`` that carry the query's label."""
    return float(relevance(ids, query_labels, db_labels).mean())


def average_precision(
    ids: np.ndarray, query_labels, db_labels, n_relevant: np.ndarray | None = None
) -> float:
    """Mean average precision over the ranked lists ``ids`` (AP@k when ``ids`` holds k columns): the mean over
    relevant positions of the precision at that position, divided by ``min(k, n_relevant)`` (the number of
    relevant items that could have been found). With ``ids`` the full ranking this is the usual mAP."""
    rel = relevance(ids, query_labels, db_labels).astype(np.float64)
    k = rel.shape[1]
    if n_relevant is None:
        n_relevant = (np.asarray(db_labels)[None, :] == np.asarray(query_labels)[:, None]).sum(1)
    prec = np.cumsum(rel, 1) / np.arange(1, k + 1)
    denom = np.minimum(k, np.asarray(n_relevant)).clip(min=1)
    return float(((prec * rel).sum(1) / denom).mean())


def recall_at_k(ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Share of the exact top-k found by an approximate search (same k), averaged over queries."""
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(ids, exact_ids)]
    return float(np.mean(hits) / exact_ids.shape[1])


def evaluate(
    queries, query_labels, database, db_labels, *, k: int = 10, kinds: tuple[str, ...] = INDEXES, **index_kw
) -> dict[str, dict[str, float]]:
    """For each index kind: ``precision@K``, ``map@K`` and ``recall@K`` (against exact search), with ``K = min(k,
    database size)``; exact also gets the full-ranking ``map``. Queries and database are L2-normalised here."""
    q, b = normalize(queries), normalize(database)
    k = min(k, len(b))
    out: dict[str, dict[str, float]] = {}
    _, exact_ids = search(build_index("exact", b, **index_kw), q, k)
    for kind in kinds:
        ids = exact_ids if kind == "exact" else search(build_index(kind, b, **index_kw), q, k)[1]
        out[kind] = {
            f"precision@{k}": precision_at_k(ids, query_labels, db_labels),
            f"map@{k}": average_precision(ids, query_labels, db_labels),
            f"recall@{k}": recall_at_k(ids, exact_ids),
        }
    _, full = torch_topk(q, b, len(b))
    out["exact"]["map"] = average_precision(full, query_labels, db_labels)
    return out

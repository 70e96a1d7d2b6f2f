"""Group metrics for spurious-correlation benchmarks: groups are label x attribute (Sagawa et al. 2020).

acc = group_accuracy(pred, y, group, n_groups=4)   # {"average", "worst", "per_group": [...]}
"""

from __future__ import annotations

import torch


def group_accuracy(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor, *, n_groups: int = 4) -> dict:
    """Average accuracy over all examples, per-group accuracy, and worst-group accuracy (the minimum over the
    groups present). ``pred``/``y``/``group``: ``[N]`` integer tensors, or ``[..., N]`` for several models at
    once (then every value is a list over the leading dims, flattened)."""
    pred, y, group = torch.as_tensor(pred), torch.as_tensor(y), torch.as_tensor(group)
    if pred.shape[-1] != y.shape[-1] or y.shape != group.shape:
        raise ValueError(
            f"group_accuracy: shapes {tuple(pred.shape)}, {tuple(y.shape)}, {tuple(group.shape)}"
        )
    lead = pred.shape[:-1]
    p = pred.reshape(-1, pred.shape[-1])
    correct = (p == y).float()  # [M, N]
    onehot = torch.nn.functional.one_hot(group.long(), n_groups).float()  # [N, G]
    counts = onehot.sum(0)
    present = counts > 0
    per = (correct @ onehot) / counts.clamp_min(1)  # [M, G]
    worst = per[:, present].min(1).values
    average = correct.mean(1)
    if not lead:
        return {"average": float(average[0]), "worst": float(worst[0]), "per_group": per[0].tolist()}
    return {"average": average.tolist(), "worst": worst.tolist(), "per_group": per.tolist()}

"""Stage 2's loss: next-token cross-entropy plus a KL term towards the teacher's logits.

    loss = CE(student_logits, next_tokens) + kl_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

``kl_weight = 0`` gives the plain cross-entropy that summaries of the paper describe; the KL term (at
temperature ``T = 1`` by default) is this implementation's default because the teacher is at hand. Stage 1's loss
is :func:`attn2mamba.hedgehog.stage1_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distill_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    kl_weight: float = 1.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``student_logits [b, L, V]``, ``targets [b, L]``, ``teacher_logits [b, L, V]`` (needed when
    ``kl_weight > 0``); returns ``(loss, {"ce": ..., "kl": ...})``."""
    V = student_logits.shape[-1]
    s = student_logits.float().reshape(-1, V)
    ce = F.cross_entropy(s, targets.reshape(-1).long())
    parts = {"ce": ce.item()}
    loss = ce
    if kl_weight > 0:
        if teacher_logits is None:
            raise ValueError("kl_weight > 0 needs the teacher's logits")
        t = teacher_logits.float().reshape(-1, V)
        kl = F.kl_div(
            F.log_softmax(s / temperature, -1),
            F.log_softmax(t / temperature, -1),
            log_target=True,
            reduction="batchmean",
        )
        loss = loss + kl_weight * temperature**2 * kl
        parts["kl"] = kl.item()
    return loss, parts

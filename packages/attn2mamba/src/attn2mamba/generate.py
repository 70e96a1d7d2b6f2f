"""Sampling from any of the three models with its recurrent state (KV cache, linear-attention state, SSM state).

    ids = generate(model, prompt, max_new_tokens=200, temperature=0.8, top_k=40)
    rows = generate(model, [prompt_a, prompt_b], 200)          # prompts of different lengths: one batch

The prompt is consumed in one chunked pass (``model.step``), then one token at a time; ``temperature=0`` is
greedy decoding. Prompts of different lengths are left-padded into one batch with a padding mask
(:meth:`attn2mamba.DecoderLM.step`): padding changes no state and every row keeps its own positions, so each row
decodes as it would alone. Everything stays on the model's device (states, sampled tokens, the output buffer);
sampling moves to the CPU only for a CPU ``generator`` with a model elsewhere. The teacher's sequence may not
exceed its ``max_seq_len``; the recurrent models (Hedgehog, Mamba) have no length limit and a state whose size
does not grow.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .lm import DecoderLM, ModelInputError


def left_pad(prompts: Sequence[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``prompts`` (1-D token tensors) -> ``(ids [batch, max_len], mask [batch, max_len])``, left-padded."""
    rows = [torch.as_tensor(p).long().flatten() for p in prompts]
    if not rows or any(r.numel() == 0 for r in rows):
        raise ModelInputError("every prompt needs at least one token")
    L = max(r.numel() for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, L - r.numel() :] = r
        mask[i, L - r.numel() :] = True
    return ids, mask


def _sample(last: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    last = last.float()
    if temperature <= 0:
        return last.argmax(-1)
    last = last / temperature
    if top_k is not None and top_k < last.shape[-1]:
        kth = last.topk(top_k, dim=-1).values[:, -1:]
        last = last.masked_fill(last < kth, float("-inf"))
    probs = last.softmax(-1)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)[:, 0]
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(
    model: DecoderLM,
    prompt: torch.Tensor | Sequence[torch.Tensor],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    step=None,
) -> torch.Tensor | list[torch.Tensor]:
    """Continue ``prompt`` by ``max_new_tokens`` sampled tokens.

    ``prompt`` is ``[batch, length]`` (returns ``[batch, length + new]``; with ``mask [batch, length]``, False
    for left padding, rows of different lengths), or a list of 1-D prompts of any lengths (returns a list: each
    prompt followed by its new tokens). ``step`` replaces ``model.decode_step()`` (the Mamba's lean
    :class:`attn2mamba.decoding.MambaStep`; ``model.step`` without the id range check for the others) for the
    one-token calls, e.g. a ``torch.compile``-d one."""
    rows = None
    if not isinstance(prompt, torch.Tensor):
        rows = [torch.as_tensor(p).flatten().numel() for p in prompt]
        prompt, mask = left_pad(prompt)
    if prompt.dim() == 1:
        prompt = prompt[None]
    b, L = prompt.shape
    total = L + max_new_tokens
    if model.length_limited and total > model.config.max_seq_len:
        raise ModelInputError(
            f"prompt plus {max_new_tokens} new tokens is {total} tokens, longer than the model's limit of "
            f"{model.config.max_seq_len} (max_seq_len)"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.empty(b, total, dtype=torch.long, device=device)
    out[:, :L] = prompt.to(device)
    state = model.init_state(b)
    logits, state = model.step(out[:, :L], state, mask)
    one = step or model.decode_step()
    for i in range(max_new_tokens):
        out[:, L + i] = _sample(logits[:, -1], temperature, top_k, generator)
        if i + 1 < max_new_tokens:
            logits, state = one(out[:, L + i : L + i + 1], state)
    model.train(was_training)
    if rows is not None:
        return [out[i, L - n :] for i, n in enumerate(rows)]
    return out

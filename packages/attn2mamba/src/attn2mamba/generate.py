"""Sampling from any of the three models with its recurrent state (KV cache, linear-attention state, SSM state).

    ids = generate(model, prompt, max_new_tokens=200, temperature=0.8, top_k=40)

The prompt is consumed in one chunked pass (``model.step``), then one token at a time; ``temperature=0`` is
greedy decoding. The teacher's sequence may not exceed its ``max_seq_len``; the recurrent models (Hedgehog,
Mamba) have no length limit and a state whose size does not grow.
"""

from __future__ import annotations

import torch

from .lm import DecoderLM, ModelInputError


@torch.no_grad()
def generate(
    model: DecoderLM,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue ``prompt [batch, length]`` by ``max_new_tokens`` sampled tokens; returns ``[batch, length + new]``."""
    if prompt.dim() == 1:
        prompt = prompt[None]
    total = prompt.shape[1] + max_new_tokens
    if model.length_limited and total > model.config.max_seq_len:
        raise ModelInputError(
            f"prompt plus {max_new_tokens} new tokens is {total} tokens, longer than the model's limit of "
            f"{model.config.max_seq_len} (max_seq_len)"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [prompt.to(device)]
    state = model.init_state(prompt.shape[0])
    logits, state = model.step(out[0], state)
    for i in range(max_new_tokens):
        last = logits[:, -1].float()
        if temperature <= 0:
            nxt = last.argmax(-1, keepdim=True)
        else:
            last = last / temperature
            if top_k is not None and top_k < last.shape[-1]:
                kth = last.topk(top_k, dim=-1).values[:, -1:]
                last = last.masked_fill(last < kth, float("-inf"))
            probs = last.softmax(-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)
        out.append(nxt)
        if i + 1 < max_new_tokens:
            logits, state = model.step(nxt, state)
    model.train(was_training)
    return torch.cat(out, dim=1)

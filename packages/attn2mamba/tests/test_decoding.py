"""The lean one-token steps (attn2mamba.decoding) compute what model.step computes, for every model variant."""

import pytest
import torch
from attn2mamba import GPTNeoX, LMConfig, MambaConfig, MambaLM, generate
from attn2mamba.decoding import MambaStep, StaticKV, TeacherStep
from attn2mamba.llama import Llama

NEOX = LMConfig(97, 32, 2, 4, 64, max_seq_len=64)
LLAMA_GQA = LMConfig(
    97, 32, 2, 4, 48, arch="llama", num_kv_heads=2, rotary_pct=1.0, parallel_residual=False, max_seq_len=64
)


def _built(cls, cfg, *args):
    torch.manual_seed(0)
    m = cls(cfg, *args)
    m.init_weights()
    with torch.no_grad():  # move the mixers off their exact-init values so that every term matters
        for n, p in m.named_parameters():
            if any(k in n for k in ("x_mix", "gate_mix", "decay", ".D", "dt_bias")):
                p.uniform_(0.2, 0.9)
    return m.double().eval()


MODELS = {
    "neox": lambda: _built(GPTNeoX, NEOX),
    "llama-gqa": lambda: _built(Llama, LLAMA_GQA),
    "mamba-ratio": lambda: _built(MambaLM, NEOX, MambaConfig(feature_dim=4, normalize="ratio")),
    "mamba-rms": lambda: _built(MambaLM, NEOX, MambaConfig(feature_dim=4, normalize="rms")),
    "mamba-rotary": lambda: _built(
        MambaLM, NEOX, MambaConfig(feature_dim=4, normalize="ratio", rotary_dim=4)
    ),
    "mamba-gqa-rotary-rms": lambda: _built(
        MambaLM, LLAMA_GQA, MambaConfig(feature_dim=4, normalize="rms", rotary_dim=8, num_b_groups=2)
    ),
}


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("name", list(MODELS))
def test_lean_step_equals_model_step(name, padded):
    model = MODELS[name]()
    step = model.decode_step()
    assert isinstance(step, TeacherStep if name in ("neox", "llama-gqa") else MambaStep)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 97, (3, 40), generator=g)
    mask = torch.ones(3, 8, dtype=torch.bool)
    if padded:
        mask[0, :5], mask[1, :1] = False, False
    _, ref = model.step(ids[:, :8], model.init_state(3), mask if padded else None)
    lean = ref
    for t in range(8, 40):  # past the first doubling of the teacher's buffer (64 positions)
        a, ref = model.step(ids[:, t : t + 1], ref)
        b, lean = step(ids[:, t : t + 1], lean)
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    # the general step continues from the lean one's state
    a, _ = model.step(ids[:, :1], ref)
    b, _ = model.step(ids[:, :1], lean)
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_mamba_step_leaves_its_input_state_untouched():
    model = MODELS["mamba-ratio"]()
    _, s0 = model.step(torch.ones(1, 5, dtype=torch.long), model.init_state(1))
    before = [(t.conv.clone(), t.ssm.clone()) for t in s0.layers]
    step = model.decode_step()
    step(torch.ones(1, 1, dtype=torch.long), s0)
    for (c, s), layer in zip(before, s0.layers):
        assert torch.equal(c, layer.conv) and torch.equal(s, layer.ssm)


def test_teacher_cache_grows_by_doubling_and_keeps_the_length_limit():
    model = MODELS["neox"]()
    step = model.decode_step()
    _, state = model.step(torch.ones(1, 60, dtype=torch.long), model.init_state(1))
    for _ in range(4):
        _, state = step(torch.ones(1, 1, dtype=torch.long), state)
    cache = state.layers[0]
    assert isinstance(cache, StaticKV) and cache.length == 64 and cache.k.shape[2] >= 64
    from attn2mamba import ModelInputError

    with pytest.raises(ModelInputError, match="longer than the model's limit"):
        step(torch.ones(1, 1, dtype=torch.long), state)


def test_generate_uses_the_lean_step_and_equals_the_general_one():
    for name in ("neox", "mamba-rotary"):
        model = MODELS[name]()
        prompt = torch.randint(0, 97, (2, 6), generator=torch.Generator().manual_seed(2))
        lean = generate(model, prompt, 20, temperature=0)
        general = generate(model, prompt, 20, temperature=0, step=model.step)
        assert torch.equal(lean, general)


@pytest.mark.parametrize("name", ["neox", "mamba-rotary", "mamba-gqa-rotary-rms"])
def test_lean_step_in_bfloat16_follows_model_step(name):
    """Half precision takes the casting branch (dt and the decay computed in float32, as in training)."""
    model = MODELS[name]().to(torch.bfloat16)
    step = model.decode_step()
    ids = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(3))
    _, ref = model.step(ids[:, :8], model.init_state(2))
    lean = ref
    for t in range(8, 16):
        a, ref = model.step(ids[:, t : t + 1], ref)
        b, lean = step(ids[:, t : t + 1], lean)
        assert b.dtype == a.dtype == torch.bfloat16
        torch.testing.assert_close(b.float(), a.float(), rtol=0.05, atol=0.05)

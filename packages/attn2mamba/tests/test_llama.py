"""The Llama teacher (RMSNorm, SwiGLU, grouped-query attention, rotary) against transformers' LlamaForCausalLM
(test-only reference, tiny random configs written to a tmp folder, no downloads); stage 1 and the Mamba conversion
on it: shared keys become grouped B, and the converted Mamba at step 0 equals the stage-1 model."""

import json

import pytest
import torch
from attn2mamba import (
    CheckpointError,
    HedgehogConfig,
    HedgehogLM,
    LMConfig,
    MambaConfig,
    mamba_from_hedgehog,
)
from attn2mamba.llama import Llama, load_llama
from attn2mamba.teacher import load_teacher

transformers = pytest.importorskip("transformers")


def hf_llama(**kw):
    args = dict(
        vocab_size=97,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        intermediate_size=80,
        max_position_embeddings=64,
    )
    cfg = transformers.LlamaConfig(**{**args, **kw})
    torch.manual_seed(0)
    m = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norms and biases, so that every weight matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(num_key_value_heads=6, rope_theta=500.0),
        dict(num_key_value_heads=1, attention_bias=True, mlp_bias=True, tie_word_embeddings=True),
    ],
    ids=["gqa", "mha-theta", "mqa-biases-tied"],
)
def test_llama_checkpoint_written_by_transformers_gives_the_same_logits(tmp_path, kw):
    if "rope_theta" in kw:  # transformers 5 spells it rope_parameters
        kw = {"rope_parameters": {"rope_type": "default", "rope_theta": kw.pop("rope_theta")}, **kw}
    ref = hf_llama(**kw)
    ref.save_pretrained(tmp_path)
    ours = load_teacher(tmp_path).eval()  # the trainer's --teacher loader picks Llama from config.json
    assert isinstance(ours, Llama) and ours.config.kv_heads == ref.config.num_key_value_heads
    x = torch.randint(0, 97, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x).logits, rtol=1e-6, atol=1e-6)
        # and in float64 (transformers normalises in float32, hence not 1e-12)
        ours64, ref64 = load_llama(tmp_path, dtype=torch.float64).eval(), ref.double()
        torch.testing.assert_close(ours64(x), ref64(x).logits, rtol=1e-6, atol=1e-6)


def test_llama_kv_cache_decoding_equals_the_full_forward(tmp_path):
    hf_llama().save_pretrained(tmp_path)
    t = load_llama(tmp_path).eval()
    x = torch.randint(0, 97, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = t(x)
        state = t.init_state(2)
        out, state = t.step(x[:, :20], state)
        outs = [out]
        for i in range(20, 50):
            o, state = t.step(x[:, i : i + 1], state)
            outs.append(o)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-5, atol=1e-5)
    assert state.layers[0].k.shape[1] == 2  # the cache holds the 2 key/value heads, not the 6 query heads


def llama_stage1(tmp_path, normalize: str, rotary: bool, kv_heads: int = 2) -> HedgehogLM:
    hf_llama(num_key_value_heads=kv_heads, attention_bias=True).save_pretrained(tmp_path)
    teacher = load_llama(tmp_path, dtype=torch.float64).eval()
    s1 = HedgehogLM.from_teacher(
        teacher, HedgehogConfig(feature_dim=5, normalize=normalize, chunk_size=16, rotary=rotary)
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-looking feature maps
        for p in s1.stage1_parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return s1.eval()


@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("normalize", ["rms", "ratio"])
def test_gqa_conversion_at_step_0_equals_the_stage1_model(tmp_path, normalize, rotary):
    s1 = llama_stage1(tmp_path, normalize, rotary)
    assert s1.blocks[0].mixer.feature_k.weight.shape[0] == 2  # one key map per key/value head
    m = mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()
    mix = m.blocks[0].mixer
    # shared keys -> grouped B (2 groups); per-head queries -> C (6 groups); one SSM head per query head
    assert (m.mamba.num_heads, m.mamba.num_groups, m.mamba.num_b_groups) == (6, 6, 2)
    width = 8 if rotary else 5  # head-sized b, c when rotated; f features otherwise
    assert mix.in_proj.out_features == 2 * 48 + (2 + 6) * width + 6
    x = torch.randint(0, 97, (2, 45), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = s1(x), m(x)
    torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)  # float64: exact up to rounding
    # and it decodes past the teacher's 64 positions, token by token, equal to its full pass
    y = torch.randint(0, 97, (1, 90), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = m(y)
        state = m.init_state(1)
        o, state = m.step(y[:, :70], state)
        outs = [o]
        for i in range(70, 90):
            o, state = m.step(y[:, i : i + 1], state)
            outs.append(o)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-9, atol=1e-9)


def test_gqa_stage1_model_is_the_teacher_with_linear_attention(tmp_path):
    """With kv_heads = heads the stage-1 weights line up one to one; with GQA the key map is per key/value head
    and its attention weights repeat over the query heads that share it (rows still sum to 1)."""
    s1 = llama_stage1(tmp_path, "ratio", rotary=True)
    att = s1.blocks[0].mixer
    h = torch.randn(1, 12, 48, dtype=torch.float64)
    q, k, v = att.project(h)
    assert q.shape[1] == 6 and k.shape[1] == v.shape[1] == 2
    w = att.attention_weights(q, k)
    assert w.shape == (1, 6, 12, 12)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 6, 12, dtype=w.dtype))


def test_bad_llama_folders(tmp_path):
    folder = tmp_path / "m"
    hf_llama().save_pretrained(folder)
    d = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**d, "rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}})
    )
    with pytest.raises(CheckpointError, match="rope type 'llama3' is not supported"):
        load_teacher(folder)
    (folder / "config.json").write_text(json.dumps({**d, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match="weights missing from the checkpoint"):
        load_teacher(folder)
    with pytest.raises(ValueError, match="arch='llama'"):
        Llama(LMConfig())
    with pytest.raises(ValueError, match="grouped-query attention"):
        LMConfig(num_heads=4, num_kv_heads=2)

"""The three models: stage-1 -> Mamba initialisation, decoding with recurrent state, losses, input errors."""

import pytest
import torch
import torch.nn.functional as F
from attn2mamba import (
    GPTNeoX,
    HedgehogConfig,
    HedgehogLM,
    LMConfig,
    MambaConfig,
    MambaLM,
    ModelInputError,
    Stage1Loss,
    distill_loss,
    generate,
    mamba_from_hedgehog,
    stage1_loss,
)

CFG = LMConfig(vocab_size=61, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48, max_seq_len=96)


def teacher(cfg=CFG, seed=0) -> GPTNeoX:
    torch.manual_seed(seed)
    t = GPTNeoX(cfg)
    t.init_weights(std=0.1)  # larger than GPT-NeoX's 0.02: attention patterns far from uniform
    return t.eval()


def trained_looking_stage1(normalize: str, cfg=CFG, rotary: bool = False) -> HedgehogLM:
    s1 = HedgehogLM.from_teacher(
        teacher(cfg), HedgehogConfig(feature_dim=6, normalize=normalize, chunk_size=16, rotary=rotary)
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in s1.stage1_parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return s1.eval()


def ids(b=2, L=70, seed=0, vocab=61):
    return torch.randint(0, vocab, (b, L), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("normalize", ["rms", "ratio"])
def test_mamba_initialisation_reproduces_stage1(normalize, rotary):
    s1 = trained_looking_stage1(normalize, rotary=rotary)
    m = mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()
    x = ids()
    with torch.no_grad():
        a, b = s1(x), m(x)
    rel = ((a - b).norm() / a.norm()).item()
    assert rel <= 1e-4, rel
    # and it is a real Mamba layer: the conv, decay, SiLU and gate are present, at their identity settings
    mix = m.blocks[0].mixer
    assert mix.decay.abs().max() == 0 and mix.x_mix.abs().max() == 0 and mix.gate_mix.abs().max() == 0
    assert torch.equal(mix.conv1d.weight[:, 0, -1], torch.ones(mix.conv_dim))


def test_released_parameters_get_gradients_at_step_0():
    m = mamba_from_hedgehog(trained_looking_stage1("ratio")).train()
    x = ids(L=40)
    F.cross_entropy(m(x[:, :-1]).reshape(-1, 61), x[:, 1:].reshape(-1)).backward()
    mix = m.blocks[0].mixer
    for name in ("decay", "x_mix", "gate_mix", "D", "dt_bias"):
        assert getattr(mix, name).grad.abs().sum() > 0, name
    assert mix.conv1d.weight.grad[:, 0, :-1].abs().sum() > 0  # the taps that start at zero
    # one step moves the decay rate off 0 (either way: A = -max(decay, 0) stays a decay, never a growth)
    torch.optim.SGD(m.parameters(), lr=1.0).step()
    assert mix.decay.abs().min() > 0 and (mix.A <= 0).all()


def incremental(model, x, cut: int, steps: int):
    state = model.init_state(x.shape[0])
    out, state = model.step(x[:, :cut], state)
    outs = [out]
    for i in range(cut, cut + steps):
        o, state = model.step(x[:, i : i + 1], state)
        outs.append(o)
    o, state = model.step(x[:, cut + steps :], state)  # a chunk after single steps
    outs.append(o)
    return torch.cat(outs, dim=1)


def all_models():
    t = teacher()
    yield "teacher", t
    for norm in ("rms", "ratio"):
        s1 = trained_looking_stage1(norm)
        yield f"hedgehog-{norm}", s1
        yield f"mamba-from-stage1-{norm}", mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()
        torch.manual_seed(3)
        m = MambaLM(CFG, MambaConfig(feature_dim=6, normalize=norm, chunk_size=16))
        m.init_weights()
        yield f"mamba-random-{norm}", m.eval()
    s1 = trained_looking_stage1("ratio", rotary=True)
    yield "hedgehog-rotary", s1
    yield "mamba-from-stage1-rotary", mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()


@pytest.mark.parametrize("name, model", list(all_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_decoding_with_state_equals_full_forward(name, model):
    x = ids(L=60)
    with torch.no_grad():
        full = model(x)
        inc = incremental(model, x, cut=21, steps=17)
    torch.testing.assert_close(inc, full, rtol=1e-5, atol=1e-5)


def test_greedy_generation_matches_the_full_forward():
    m = mamba_from_hedgehog(trained_looking_stage1("ratio")).eval()
    prompt = ids(b=2, L=9)
    out = generate(m, prompt, 12, temperature=0)
    assert out.shape == (2, 21) and torch.equal(out[:, :9], prompt)
    with torch.no_grad():
        for t in range(9, 21):
            assert torch.equal(m(out[:, :t])[:, -1].argmax(-1), out[:, t])


def test_sampling_is_reproducible_with_a_generator():
    t = teacher()
    a = generate(t, ids(b=1, L=5), 10, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(0))
    b = generate(t, ids(b=1, L=5), 10, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_input_errors_are_clear():
    t = teacher()
    with pytest.raises(ModelInputError, match="outside the model's vocabulary of 61: tokenizer and model"):
        t(torch.tensor([[1, 2, 61]]))
    with pytest.raises(ModelInputError, match="longer than the model's limit of 96"):
        t(torch.zeros(1, 97, dtype=torch.long))
    with pytest.raises(ModelInputError, match="longer than the model's limit of 96"):
        generate(t, torch.zeros(1, 90, dtype=torch.long), 10)
    m = MambaLM(CFG, MambaConfig(feature_dim=4))
    with pytest.raises(ModelInputError, match="outside the model's vocabulary of 61"):
        m.step(torch.tensor([[61]]), m.init_state(1))


@pytest.mark.parametrize("rotary", [False, True])
def test_recurrent_models_decode_past_the_teachers_length_limit(rotary):
    """The teacher stops at max_seq_len (96 here); its stage-1 and Mamba students have a fixed-size state and
    decode on, equal to their full forward pass at twice that length."""
    s1 = trained_looking_stage1("ratio", rotary=rotary)
    m = mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()
    x = ids(b=2, L=200)
    for model in (s1, m):
        with torch.no_grad():
            full = model(x)
            inc = incremental(model, x, cut=90, steps=20)
        torch.testing.assert_close(inc, full, rtol=1e-4, atol=1e-4)
        assert generate(model, x[:, :150], 60, temperature=0).shape == (2, 210)


def test_distill_loss_is_cross_entropy_plus_kl():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    y = torch.randint(0, 7, (2, 5), generator=g)
    ce = F.cross_entropy(s.reshape(-1, 7), y.reshape(-1))
    loss0, _ = distill_loss(s, y, kl_weight=0.0)
    torch.testing.assert_close(loss0, ce)
    same, parts = distill_loss(s, y, s.clone(), kl_weight=1.0)
    torch.testing.assert_close(same, ce) and pytest.approx(parts["kl"], abs=1e-7) == 0
    p, q = t.softmax(-1), s.log_softmax(-1)
    kl = (p * (p.log() - q)).sum(-1).mean()
    loss, _ = distill_loss(s, y, t, kl_weight=0.5)
    torch.testing.assert_close(loss, ce + 0.5 * kl)


def test_stage1_trains_only_feature_maps_and_lowers_its_loss():
    t = teacher()
    s1 = HedgehogLM.from_teacher(t, HedgehogConfig(feature_dim=8, normalize="rms"))
    s1.requires_grad_(False)
    params = s1.stage1_parameters()
    for p in params:
        p.requires_grad_(True)
    assert {
        n.split(".")[-2] if "feature" in n else n.split(".")[-1]
        for n, p in s1.named_parameters()
        if p.requires_grad
    } == {"feature_q", "feature_k", "norm_weight"}
    frozen = {n: p.clone() for n, p in s1.named_parameters() if not p.requires_grad}
    opt = torch.optim.Adam(params, lr=1e-2)
    x = ids(b=4, L=48)
    losses = []
    for _ in range(25):
        records, _ = t.attention_io(x, weights=True)
        loss, parts = stage1_loss(s1, records, Stage1Loss(cosine=1, mse=1, xent=0.1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    for n, p in s1.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n


def test_teacher_attention_records_match_the_forward():
    t = teacher()
    x = ids(L=30)
    records, logits = t.attention_io(x, weights=True)
    torch.testing.assert_close(logits, t(x))
    w = records[0]["weights"]
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
    assert torch.all(w.triu(1) == 0)


def test_stage1_end_to_end_term_is_the_kl_from_the_teachers_logits():
    t = teacher()
    s1 = HedgehogLM.from_teacher(t, HedgehogConfig(feature_dim=8, normalize="ratio", rotary=True))
    x = ids(b=2, L=40)
    records, t_logits = t.attention_io(x)
    loss, parts = stage1_loss(
        s1, records, Stage1Loss(cosine=0, mse=0, xent=0, kl=1.0), ids=x, teacher_logits=t_logits
    )
    p = t_logits.softmax(-1)
    ref = (p * (p.log() - s1(x).log_softmax(-1))).sum(-1).mean()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    assert parts["kl"] == pytest.approx(ref.item(), rel=1e-5) and parts["cosine"] == 0
    # the term reaches every feature map (the layer-wise terms see only their own layer's)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in s1.stage1_parameters())
    with pytest.raises(ValueError, match="needs ids and the teacher's logits"):
        stage1_loss(s1, records, Stage1Loss(kl=1.0))


@pytest.mark.parametrize("normalize", ["rms", "ratio"])
def test_float64_models_stay_float64(normalize):
    """No hidden float32 casts: in float64 the stage-2 initialisation reproduces stage 1 to ~1e-12."""
    s1 = trained_looking_stage1(normalize).double()
    m = mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()
    x = ids()
    with torch.no_grad():
        a, b = s1(x), m(x)
    assert a.dtype == b.dtype == torch.float64
    assert ((a - b).norm() / a.norm()).item() < 1e-10


def llama_like_teacher(seed=0):
    """A Llama-architecture teacher (RMSNorm, SwiGLU, 4 query heads sharing 2 key/value heads, full rotary)."""
    cfg = LMConfig(
        vocab_size=61,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=48,
        max_seq_len=96,
        arch="llama",
        rotary_pct=1.0,
        parallel_residual=False,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )
    return teacher(cfg, seed)


def decoding_models():
    yield from all_models()
    t = llama_like_teacher()
    yield "llama-gqa-teacher", t
    s1 = HedgehogLM.from_teacher(
        t, HedgehogConfig(feature_dim=6, normalize="ratio", chunk_size=16, rotary=True)
    )
    yield "llama-gqa-mamba", mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()


@pytest.mark.parametrize(
    "name, model", list(decoding_models()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_batched_prompts_of_different_lengths_decode_as_each_alone(name, model):
    """Left padding with a mask: every row's logits and greedy tokens equal that prompt decoded on its own."""
    from attn2mamba.generate import left_pad

    prompts = [ids(b=1, L=n, seed=n)[0] for n in (5, 17, 30)]
    batch, mask = left_pad(prompts)
    with torch.no_grad():
        logits, state = model.step(batch, model.init_state(3), mask)
        nxt = ids(b=3, L=4, seed=9)
        outs = []
        for i in range(4):
            o, state = model.step(nxt[:, i : i + 1], state)
            outs.append(o)
        for r, p in enumerate(prompts):
            alone = model(torch.cat((p, nxt[r]))[None])[0]
            n = p.numel()
            torch.testing.assert_close(logits[r, -n:], alone[:n], rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(torch.cat(outs, 1)[r], alone[n:], rtol=1e-4, atol=1e-4)
    rows = generate(model, prompts, 10, temperature=0)
    for p, row in zip(prompts, rows):
        assert torch.equal(row, generate(model, p[None], 10, temperature=0)[0])


@pytest.mark.parametrize("rotary", [False, True])
def test_batched_padded_decoding_past_the_teachers_length_limit(rotary):
    """Prompts of 40 and 90 tokens, 120 new tokens each: past the teacher's 96 positions, still each row as alone."""
    s1 = trained_looking_stage1("ratio", rotary=rotary)
    m = mamba_from_hedgehog(s1, MambaConfig(chunk_size=16)).eval()
    prompts = [ids(b=1, L=40, seed=1)[0], ids(b=1, L=90, seed=2)[0]]
    rows = generate(m, prompts, 120, temperature=0)
    assert [r.numel() for r in rows] == [160, 210]
    for p, row in zip(prompts, rows):
        with torch.no_grad():
            full = m(row[None])[0]
        # greedy: each new token is the argmax of the full pass over the row up to it
        assert torch.equal(full[p.numel() - 1 : -1].argmax(-1), row[p.numel() :])


def test_padding_mask_errors():
    m = MambaLM(CFG, MambaConfig(feature_dim=4))
    x = ids(b=2, L=6)
    right = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6], dtype=torch.bool)
    with pytest.raises(ModelInputError, match="padding must be on the left"):
        m.step(x, m.init_state(2), right)
    _, state = m.step(x, m.init_state(2))
    with pytest.raises(ModelInputError, match="only with the first"):
        m.step(x, state, torch.ones(2, 6, dtype=torch.bool))

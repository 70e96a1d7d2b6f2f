"""The optional CUDA paths (extra ``cuda``: mamba-ssm, causal-conv1d, flash-attn) against the pure-PyTorch
reference. They skip without CUDA (CI never installs the extra); on a GPU without the extra only the bf16 and
auto-selection tests run."""

import pytest
import torch
from attn2mamba import GPTNeoX, LMConfig, MambaConfig, MambaLM, kernels, ssd_chunked

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_auto_never_selects_a_kernel_on_the_cpu():
    t = torch.zeros(1)
    for k in (kernels.mamba_chunk_scan, kernels.causal_conv1d, kernels.flash_attention):
        assert not kernels.wanted("auto", t, k)
        assert not kernels.wanted("torch", t, k)


def _ssd_inputs(device, b=2, L=300, H=8, P=32, G=2, N=16):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(b, L, H, P, generator=g)
    dt = torch.rand(b, L, H, generator=g) * 0.2 + 0.01
    A = -torch.rand(H, generator=g) * 4
    B = torch.randn(b, L, G, N, generator=g)
    C = torch.randn(b, L, G, N, generator=g)
    return [t.to(device) for t in (x, dt, A, B, C)]


@cuda
def test_mamba_ssm_chunk_scan_matches_torch():
    scan = kernels.mamba_chunk_scan()
    if scan is None:
        pytest.skip("mamba-ssm is not installed (extra: cuda)")
    x, dt, A, B, C = _ssd_inputs("cuda")
    ref = ssd_chunked(x, dt, A, B, C, chunk_size=64)
    out = scan(x, dt, A, B, C, chunk_size=64)
    torch.testing.assert_close(out.float(), ref, rtol=2e-3, atol=2e-3)


@cuda
def test_causal_conv1d_matches_torch():
    conv = kernels.causal_conv1d()
    if conv is None:
        pytest.skip("causal-conv1d is not installed (extra: cuda)")
    x = torch.randn(2, 64, 100, device="cuda")
    w, b = torch.randn(64, 4, device="cuda"), torch.randn(64, device="cuda")
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (3, 0)), w[:, None], b, groups=64)
    torch.testing.assert_close(conv(x, w, b), ref, rtol=1e-4, atol=1e-4)


@cuda
def test_flash_attn_matches_the_teachers_sdpa_attention():
    fa = kernels.flash_attention()
    if fa is None:
        pytest.skip("flash-attn is not installed (extra: cuda)")
    t = GPTNeoX(
        LMConfig(vocab_size=50, hidden_size=128, num_layers=1, num_heads=2, intermediate_size=64)
    ).cuda()
    h = torch.randn(2, 80, 128, device="cuda", dtype=torch.bfloat16)
    att = t.blocks[0].mixer.to(torch.bfloat16)
    q, k, v = att.project(h)
    ref, _ = att.attend(q, k, v)
    qr, kr = att.rotary(q, k, 0)
    out = fa(qr.transpose(1, 2), kr.transpose(1, 2), v.transpose(1, 2), causal=True)
    torch.testing.assert_close(out.reshape(2, 80, 128), ref, rtol=2e-2, atol=2e-2)


@cuda
def test_mamba_lm_auto_kernels_match_the_torch_path():
    if kernels.mamba_chunk_scan() is None:
        pytest.skip("mamba-ssm is not installed (extra: cuda)")
    cfg = LMConfig(vocab_size=64, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=96)
    torch.manual_seed(0)
    fast = MambaLM(cfg, MambaConfig(feature_dim=8, use_kernels="auto"))
    fast.init_weights()
    slow = MambaLM(cfg, MambaConfig(feature_dim=8, use_kernels="torch"))
    slow.load_state_dict(fast.state_dict())
    x = torch.randint(0, 64, (2, 200), device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(fast.cuda()(x), slow.cuda()(x), rtol=2e-3, atol=2e-3)


@cuda
def test_models_under_bf16_autocast_stay_close_to_fp32():
    from paperkit.device import autocast

    cfg = LMConfig(vocab_size=64, hidden_size=64, num_layers=2, num_heads=4, intermediate_size=96)
    torch.manual_seed(0)
    m = MambaLM(cfg, MambaConfig(feature_dim=8, use_kernels="torch"))
    m.init_weights()
    m = m.cuda().eval()
    x = torch.randint(0, 64, (2, 200), device="cuda")
    with torch.no_grad():
        ref = m(x).float()
        with autocast(torch.device("cuda")):
            low = m(x).float()
    assert torch.isfinite(low).all()
    assert ((low - ref).norm() / ref.norm()).item() < 3e-2

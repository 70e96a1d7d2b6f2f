"""The chunked training forms equal their definitions: linear attention (quadratic, chunked, recurrent) and the SSD
scan (chunked vs the token-by-token recurrence), values, states and gradients, in float64."""

import pytest
import torch
from attn2mamba import (
    linear_attention_chunked,
    linear_attention_quadratic,
    linear_attention_recurrent,
    ssd_chunked,
    ssd_recurrent,
)

f64 = torch.float64


def la_inputs(b=2, h=3, L=37, F=6, P=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    qf = torch.rand(b, h, L, F, generator=g, dtype=f64).requires_grad_()
    kf = torch.rand(b, h, L, F, generator=g, dtype=f64).requires_grad_()
    v = torch.randn(b, h, L, P, generator=g, dtype=f64).requires_grad_()
    return qf, kf, v


@pytest.mark.parametrize("L, chunk", [(37, 8), (64, 16), (5, 8), (1, 4)])
def test_linear_attention_forms_agree(L, chunk):
    qf, kf, v = la_inputs(L=L)
    quad = linear_attention_quadratic(qf, kf, v)
    chunked, S = linear_attention_chunked(qf, kf, v, chunk_size=chunk)
    rec, S_rec = linear_attention_recurrent(qf, kf, v)
    torch.testing.assert_close(chunked, quad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rec, quad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, S_rec, rtol=1e-12, atol=1e-12)
    # the state is what the definition says: sum_s kf_s v_s^T
    torch.testing.assert_close(S, kf.transpose(-1, -2) @ v, rtol=1e-12, atol=1e-12)


def test_linear_attention_gradients_agree():
    qf, kf, v = la_inputs(L=45)
    w = torch.randn(2, 3, 45, 5, dtype=f64)
    g1 = torch.autograd.grad((linear_attention_quadratic(qf, kf, v) * w).sum(), (qf, kf, v))
    g2 = torch.autograd.grad((linear_attention_chunked(qf, kf, v, chunk_size=8)[0] * w).sum(), (qf, kf, v))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_linear_attention_continues_from_a_state():
    qf, kf, v = la_inputs(L=40)
    full, S_full = linear_attention_chunked(qf, kf, v, chunk_size=8)
    a, S = linear_attention_chunked(qf[:, :, :13], kf[:, :, :13], v[:, :, :13], chunk_size=8)
    b, S2 = linear_attention_chunked(
        qf[:, :, 13:], kf[:, :, 13:], v[:, :, 13:], chunk_size=8, initial_state=S
    )
    torch.testing.assert_close(torch.cat((a, b), dim=2), full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S2, S_full, rtol=1e-12, atol=1e-12)


def ssd_inputs(b=2, L=37, H=4, P=5, G=2, N=6, seed=0, zero_decay=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, L, H, P, generator=g, dtype=f64).requires_grad_()
    dt = (torch.rand(b, L, H, generator=g, dtype=f64) * 0.5 + 0.01).requires_grad_()
    A = (
        torch.zeros(H, dtype=f64) if zero_decay else -torch.rand(H, generator=g, dtype=f64) * 3
    ).requires_grad_()
    B = torch.randn(b, L, G, N, generator=g, dtype=f64).requires_grad_()
    C = torch.randn(b, L, G, N, generator=g, dtype=f64).requires_grad_()
    D = torch.randn(H, generator=g, dtype=f64).requires_grad_()
    h0 = torch.randn(b, H, P, N, generator=g, dtype=f64).requires_grad_()
    return x, dt, A, B, C, D, h0


@pytest.mark.parametrize("L, chunk, G", [(37, 8, 2), (64, 16, 4), (64, 64, 1), (3, 8, 2), (100, 7, 2)])
def test_ssd_chunked_equals_recurrence_values_and_gradients(L, chunk, G):
    x, dt, A, B, C, D, h0 = ssd_inputs(L=L, G=G)
    inputs = (x, dt, A, B, C, D, h0)
    y1, s1 = ssd_chunked(x, dt, A, B, C, chunk_size=chunk, D=D, initial_state=h0, return_final_state=True)
    y2, s2 = ssd_recurrent(x, dt, A, B, C, D=D, initial_state=h0)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s1, s2, rtol=1e-10, atol=1e-10)
    wy, ws = torch.randn_like(y1), torch.randn_like(s1)
    g1 = torch.autograd.grad((y1 * wy).sum() + (s1 * ws).sum(), inputs)
    g2 = torch.autograd.grad((y2 * wy).sum() + (s2 * ws).sum(), inputs)
    for name, a, b in zip(("x", "dt", "A", "B", "C", "D", "h0"), g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"gradient of {name}")


def test_ssd_without_decay_is_linear_attention():
    """A = 0, dt = 1, one head per group: the SSD is causal linear attention with B = phi(k), C = phi(q)."""
    b, L, H, P, N = 2, 30, 3, 4, 6
    qf, kf, v = la_inputs(b=b, h=H, L=L, F=N, P=P)
    la, _ = linear_attention_chunked(qf, kf, v, chunk_size=8)
    y = ssd_chunked(
        v.transpose(1, 2),
        torch.ones(b, L, H, dtype=f64),
        torch.zeros(H, dtype=f64),
        kf.transpose(1, 2),
        qf.transpose(1, 2),
        chunk_size=8,
    )
    torch.testing.assert_close(y.transpose(1, 2), la, rtol=1e-12, atol=1e-12)


def test_ssd_strong_decay_stays_finite():
    x, dt, A, B, C, D, h0 = ssd_inputs(L=128)
    y = ssd_chunked(x, dt * 50, A * 10, B, C, chunk_size=64)
    assert torch.isfinite(y).all()
    y.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (x, dt, A, B, C))


def test_ssd_float32_close_to_float64():
    x, dt, A, B, C, D, h0 = ssd_inputs(L=200, H=4, G=4)
    ref = ssd_recurrent(x, dt, A, B, C, D=D)[0]
    y32 = ssd_chunked(*(t.detach().float() for t in (x, dt, A, B, C)), chunk_size=64, D=D.detach().float())
    torch.testing.assert_close(y32.double(), ref.detach(), rtol=1e-4, atol=1e-4)

"""ACP-Net, its cosine variant and the baselines: shapes, the metric head, gradients, timm branches."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from affective_music.models import ACPCosine, ACPNet, ConvTower, InputNorm, L3Net, build


def nets():
    torch.manual_seed(0)
    return {
        "acp": ACPNet(ConvTower(1, (4, 8)), ConvTower(3, (4, 8)), dim=16, hidden=8),
        "acp-cos": ACPCosine(ConvTower(1, (4, 8)), ConvTower(3, (4, 8)), dim=16),
        "l3": L3Net(ConvTower(1, (4, 8)), ConvTower(3, (4, 8)), hidden=8),
    }


@pytest.mark.parametrize("name", ["acp", "acp-cos", "l3"])
def test_shapes_and_fuse_equals_forward(name):
    net = nets()[name].eval()
    a, v = torch.randn(5, 1, 16, 24), torch.rand(5, 3, 16, 16)
    out = net(a, v)
    assert out.shape == (5, 2)
    assert torch.allclose(net.fuse(net.embed_audio(a), net.embed_image(v)), out, atol=1e-6)


def test_common_space_is_normalised():
    net = nets()["acp"].eval()
    e = net.embed_audio(torch.randn(4, 1, 16, 16))
    assert torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_cosine_head_is_a_monotone_function_of_cosine():
    net = nets()["acp-cos"]
    a = F.normalize(torch.randn(64, 16), dim=-1)
    v = F.normalize(torch.randn(64, 16), dim=-1)
    logit = net.fuse(a, v)
    assert torch.equal(logit[:, 0], torch.zeros(64))
    cos = (a * v).sum(-1)
    order = cos.argsort()
    assert torch.all(logit[order, 1].diff() >= -1e-6)  # ranking by the classifier = ranking by cosine
    assert torch.allclose(net.fuse(v, a), logit)  # symmetric


def test_acp_fusion_is_symmetric_in_a_v_swaps_only_through_the_head():
    net = nets()["acp"]
    a, v = F.normalize(torch.randn(3, 16), dim=-1), F.normalize(torch.randn(3, 16), dim=-1)
    h = torch.cat([a, v, (a - v).abs(), a * v], -1)
    assert torch.allclose(net.fuse(a, v), net.head(h))


@pytest.mark.parametrize("name", ["acp", "acp-cos", "l3"])
def test_every_parameter_gets_a_gradient(name):
    net = nets()[name].train()
    loss = F.cross_entropy(net(torch.randn(6, 1, 16, 16), torch.rand(6, 3, 16, 16)), torch.tensor([0, 1] * 3))
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_input_norm_keeps_loudness_differences():
    norm = InputNorm(-5.0, 2.0)
    x = torch.randn(2, 1, 4, 4)
    assert torch.allclose(norm(x + 1) - norm(x), torch.full_like(x, 0.5))


def test_build_by_name_and_unknown_name():
    m = build("acp", audio_in=3, channels=(4,), dim=8, hidden=8)
    assert m(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)).shape == (2, 2)
    with pytest.raises(ValueError, match="unknown model"):
        build("transformer")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is an optional extra")
def test_timm_branch_builds_offline():
    m = build("acp-cos", image_model="resnet10t", audio_model="cnn", channels=(4,), dim=8)
    assert m(torch.randn(2, 1, 16, 16), torch.rand(2, 3, 32, 32)).shape == (2, 2)

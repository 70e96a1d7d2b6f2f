"""The diagonal Fisher: per-sample (vmap) equals a one-sample-at-a-time loop; the minibatch-squared estimate is
about 1/B of it; normalisation; safetensors files tied to the weights; importing a released Fisher."""

import pytest
import torch
from ewc_ssl import (
    FisherMismatch,
    diagonal_fisher,
    import_fisher,
    linear_fisher,
    load_fisher,
    normalise,
    save_fisher,
)
from ewc_ssl.fisher import read_fisher_metadata, weights_fingerprint
from torch import nn


def tiny(seed=0, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.LayerNorm(7), nn.Linear(7, k))


def loop_fisher(model, x, y=None, *, exact=False):
    """Reference: one sample at a time with autograd, (d log p(y|x))^2 summed and averaged (Eq. of the paper)."""
    params = dict(model.named_parameters())
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in range(len(x)):
        logp = torch.log_softmax(model(x[i : i + 1]), -1)[0]
        classes = range(logp.shape[0]) if exact else [int(y[i])]
        for c in classes:
            g = torch.autograd.grad(logp[c], list(params.values()), retain_graph=True)
            w = float(logp[c].detach().exp()) if exact else 1.0
            for n, gi in zip(params, g):
                total[n] += w * gi**2
    return {n: t / len(x) for n, t in total.items()}


def test_empirical_fisher_equals_a_per_sample_loop():
    model = tiny()
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    got = diagonal_fisher(model, batches, variant="empirical", chunk=7)
    ref = loop_fisher(model, x, y)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-7)


def test_exact_fisher_equals_the_loop_over_classes_and_true_fisher_converges_to_it():
    model = tiny(1)
    x = torch.randn(24, 5)
    exact = diagonal_fisher(model, [x], variant="exact")
    ref = loop_fisher(model, x, exact=True)
    for n in ref:
        torch.testing.assert_close(exact[n], ref[n], rtol=1e-5, atol=1e-7)
    sampled = diagonal_fisher(
        model, [x], variant="true", samples=400, generator=torch.Generator().manual_seed(0)
    )
    num = sum((sampled[n] - exact[n]).abs().sum() for n in exact)
    den = sum(exact[n].abs().sum() for n in exact)
    assert num / den < 0.1  # Monte-Carlo error of 400 draws per input


def test_only_the_named_parameters_are_kept_and_the_model_is_unchanged():
    model = tiny()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    f = diagonal_fisher(
        model, [torch.randn(8, 5)], params=["0.weight", "0.bias"], generator=torch.Generator().manual_seed(0)
    )
    assert set(f) == {"0.weight", "0.bias"}
    for n, p in model.state_dict().items():
        assert torch.equal(p, before[n])
    with pytest.raises(ValueError, match="no parameter named"):
        diagonal_fisher(model, [torch.randn(2, 5)], params=["nope"])
    with pytest.raises(ValueError, match="needs"):
        diagonal_fisher(model, [torch.randn(2, 5)], variant="empirical")


def test_minibatch_squaring_is_about_one_over_b_of_the_per_sample_fisher():
    """The pitfall of avalanche-style EWC: squaring the gradient of the batch-mean log-likelihood. With y drawn
    from the model, per-sample scores are i.i.d. with mean zero, so E[(mean of B scores)^2] = F / B."""
    model = tiny(2, k=4)
    B = 32
    x = torch.randn(B * 64, 5)
    batches = [x[i : i + B] for i in range(0, len(x), B)]
    per_sample = diagonal_fisher(model, batches, variant="true", generator=torch.Generator().manual_seed(0))
    minibatch = diagonal_fisher(
        model, batches, variant="minibatch", generator=torch.Generator().manual_seed(1)
    )
    ref = loop_fisher(model, x, exact=True)
    tot = lambda f: float(sum(v.sum() for v in f.values()))  # noqa: E731
    ratio = tot(minibatch) / tot(per_sample)
    assert 0.5 / B < ratio < 2.0 / B, ratio
    # the per-sample estimate matches the loop reference (sampling error only), the minibatch one does not
    assert abs(tot(per_sample) / tot(ref) - 1) < 0.1
    assert tot(minibatch) / tot(ref) < 0.1


def test_normalise_mean_max_and_floor():
    f = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([[0.0, 4.0]])}
    m = normalise(f, "mean")
    assert float(torch.cat([v.flatten() for v in m.values()]).mean()) == pytest.approx(1.0)
    mx = normalise(f, "max", floor=0.1)
    torch.testing.assert_close(mx["a"], torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(mx["b"], torch.tensor([[0.1, 1.0]]))
    torch.testing.assert_close(normalise(f, "none")["a"], f["a"])
    with pytest.raises(ValueError):
        normalise(f, "median")


def test_save_load_round_trip_and_refusal_of_other_weights(tmp_path):
    model = tiny()
    f = diagonal_fisher(model, [torch.randn(8, 5)], generator=torch.Generator().manual_seed(0))
    path = save_fisher(tmp_path / "f.safetensors", f, model, variant="true", samples=8)
    back = load_fisher(path, model)
    assert back.keys() == f.keys()
    for n in f:
        assert torch.equal(back[n], f[n])
    md = read_fisher_metadata(path)
    assert md["meta"] == {"variant": "true", "samples": 8}
    assert md["weights_sha256"] == weights_fingerprint(model)
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-3
    with pytest.raises(FisherMismatch, match="other weights"):
        load_fisher(path, model)
    with pytest.raises(FisherMismatch, match="shape"):
        load_fisher(path, tiny(k=4))
    with pytest.raises(FisherMismatch, match="no Fisher file"):
        load_fisher(tmp_path / "missing.safetensors")


def test_import_a_released_fisher_for_a_timm_backbone(tmp_path):
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=0)
    released = {f"module.backbone.{n}": torch.rand_like(p) for n, p in model.named_parameters()}
    released["module.head.last_layer.weight"] = torch.rand(10, 3)  # a DINO head entry: dropped
    src = tmp_path / "vit_fim.pth"
    torch.save(released, src)
    fisher = import_fisher(src, model, dest=tmp_path / "ours.safetensors", origin="test")
    assert set(fisher) == {n for n, _ in model.named_parameters()}
    assert torch.equal(fisher["cls_token"], released["module.backbone.cls_token"])
    back = load_fisher(tmp_path / "ours.safetensors", model)
    assert torch.equal(back["pos_embed"], released["module.backbone.pos_embed"])
    del released["module.backbone.cls_token"]
    torch.save(released, src)
    with pytest.raises(FisherMismatch, match="cls_token"):
        import_fisher(src, model)


def test_outer_product_fisher_equals_the_per_sample_one():
    """(delta^2)^T (a^2) for linear layers, vmap for the LayerNorm: the same numbers as per-sample gradients."""
    model = tiny(3)
    x, y = torch.randn(30, 5), torch.randint(0, 3, (30,))
    ref = loop_fisher(model, x, y)
    got = linear_fisher(model, [(x[:13], y[:13]), (x[13:], y[13:])], variant="empirical")
    assert set(got) == set(ref)
    for n in ref:
        torch.testing.assert_close(got[n], ref[n], rtol=1e-5, atol=1e-7)
    a = diagonal_fisher(model, [x], samples=3, generator=torch.Generator().manual_seed(5))
    b = linear_fisher(model, [x], samples=3, generator=torch.Generator().manual_seed(5))
    for n in a:
        torch.testing.assert_close(b[n], a[n], rtol=1e-5, atol=1e-7)

"""Diagonal Fisher information of a model read as ``p_theta(y | x)``, from per-sample gradients.

The Laplace view of fine-tuning (Ovsianas et al. 2022, Eqs. 1-2): ``log p(theta | D_SSL) ~ -1/2 ||theta -
theta_SSL||^2_H`` with the Hessian ``H`` replaced by the diagonal Fisher

    F_i = 1/N sum_n E_{y ~ p_theta(. | x_n)} [ (d/d theta_i  log p_theta(y | x_n))^2 ]

Variants (``variant=``):

* ``"true"``: y sampled from the model's own predictive distribution (``samples`` draws per input), the
  Monte-Carlo estimate of the expectation above.
* ``"exact"``: the expectation over every class, weighted by ``p_theta(y | x)`` (K gradients per input; for
  small K, and the reference the sampled estimate converges to).
* ``"empirical"``: y given (for a self-supervised model, the teacher's assignment), ``(d log p(y_n|x_n))^2``.
* ``"minibatch"``: the square of the gradient of the *batch-mean* log-likelihood, summed over batches and divided
  by their number, as avalanche's ``EWCPlugin`` and much EWC code compute it. Provided only to show the pitfall:
  for roughly zero-mean per-sample gradients it is about ``1/B`` of the Fisher (``B`` the batch size). Never
  use it as an estimate.

Per-sample gradients come from ``torch.func.vmap(torch.func.grad(...))`` over a chunk of inputs, streamed over
a data loader, so memory is ``chunk x parameters`` and time is a few batched passes. Only the parameters named
by ``params`` (by default every trainable parameter; EWC wants the backbone's) are kept.

    fisher = diagonal_fisher(model, loader, variant="true", params=backbone_names)
    fisher = normalise(fisher, "mean", floor=1e-3)
    save_fisher("fisher.safetensors", fisher, model.backbone, variant="true", samples=1000)
    fisher = load_fisher("fisher.safetensors", model.backbone)   # refuses other weights
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from paperkit.config import ConfigError
from torch import nn
from torch.func import functional_call, grad, vmap

VARIANTS = ("true", "exact", "empirical", "minibatch")
NORMALISATIONS = ("none", "mean", "max")
FORMAT = "ewc-ssl-fisher/1"


class FisherMismatch(ConfigError):
    """A Fisher file that does not belong to the model it is applied to (other weights, names or shapes)."""


Batch = torch.Tensor | tuple | list | dict


def _split_batch(batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, dict):
        return batch["x"], batch.get("y")
    x, *rest = batch
    return x, (rest[0] if rest else None)


def diagonal_fisher(
    model: nn.Module,
    data: Iterable[Batch],
    *,
    variant: str = "true",
    params: Sequence[str] | None = None,
    samples: int = 1,
    chunk: int = 256,
    max_samples: int | None = None,
    generator: torch.Generator | None = None,
    log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """The diagonal Fisher of ``model`` (logits ``model(x)``, or ``log_prob(model(x))`` log-probabilities)
    averaged over the inputs of ``data`` (tensors ``x``, or ``(x, y)`` pairs / ``{"x", "y"}`` dicts; ``y`` is
    needed only for ``variant="empirical"``).

    Returns ``{name: tensor}`` for the parameters named in ``params`` (default: all with ``requires_grad``), in
    float32 on the parameters' device. The model is used as it is (call ``model.eval()`` first for dropout or
    batch norm); buffers are read, never updated.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown Fisher variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if samples < 1 or chunk < 1:
        raise ValueError("samples and chunk must be >= 1")
    all_params = dict(model.named_parameters())
    names = [n for n, p in all_params.items() if p.requires_grad] if params is None else list(params)
    missing = [n for n in names if n not in all_params]
    if missing:
        raise ValueError(f"diagonal_fisher: no parameter named {missing[0]!r} in the model")
    kept = {n: all_params[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in all_params.items() if n not in kept}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    to_logp = log_prob or (lambda logits: torch.log_softmax(logits, dim=-1))

    def logp_all(theta: dict, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({**frozen, **theta, **buffers},), (x.unsqueeze(0),))
        return to_logp(out).squeeze(0)

    def logp_y(theta: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logp_all(theta, x).gather(-1, y.reshape(1)).squeeze()

    per_sample = vmap(grad(logp_y), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in kept.items()}
    seen, batches = 0, 0
    for batch in _progress(data, progress):
        x, y = _split_batch(batch)
        if max_samples is not None:
            x = x[: max_samples - seen]
            y = None if y is None else y[: max_samples - seen]
        if x.shape[0] == 0:
            break
        dev = next(iter(kept.values())).device
        x = x.to(dev)
        if variant == "minibatch":
            _add_minibatch(model, kept, frozen, buffers, to_logp, x, y, generator, total)
            batches += 1
        else:
            for lo in range(0, x.shape[0], chunk):
                xc = x[lo : lo + chunk]
                _add_chunk(variant, per_sample, logp_all, kept, xc, y, lo, chunk, samples, generator, total)
        seen += x.shape[0]
        if max_samples is not None and seen >= max_samples:
            break
    if seen == 0:
        raise ValueError("diagonal_fisher: the data gave no samples")
    denom = float(batches if variant == "minibatch" else seen)
    torch._foreach_div_(list(total.values()), denom)
    return total


def _add_chunk(variant, per_sample, logp_all, kept, xc, y, lo, chunk, samples, generator, total) -> None:
    vals = list(total.values())
    if variant == "empirical":
        if y is None:
            raise ValueError("variant='empirical' needs (x, y) batches")
        yc = y[lo : lo + chunk].to(xc.device)
        _accumulate(vals, per_sample(kept, xc, yc), total, 1.0)
        return
    with torch.no_grad():
        probs = torch.exp(vmap(logp_all, in_dims=(None, 0))(kept, xc))
    if variant == "true":
        draws = torch.multinomial(probs.cpu(), samples, replacement=True, generator=generator).to(xc.device)
        for s in range(samples):
            _accumulate(vals, per_sample(kept, xc, draws[:, s]), total, 1.0 / samples)
        return
    # exact: sum_k p_k (d log p_k)^2, one vmapped pass per class
    k = probs.shape[-1]
    for c in range(k):
        yk = torch.full((xc.shape[0],), c, dtype=torch.long, device=xc.device)
        g = per_sample(kept, xc, yk)
        _accumulate(vals, g, total, 1.0, weights=probs[:, c])


def _accumulate(vals, g: dict, total: dict, scale: float, weights: torch.Tensor | None = None) -> None:
    """``vals += scale * sum_n w_n g_n^2`` for per-sample gradients ``g[name] [n, ...]``: one matmul per tensor
    (``w @ g^2`` over the flattened sample dimension)."""
    gs = [g[n].reshape(g[n].shape[0], -1) for n in total]
    sq = torch._foreach_mul(gs, gs)
    w = (weights if weights is not None else torch.ones(gs[0].shape[0], device=gs[0].device)) * scale
    torch._foreach_add_(vals, [(w @ s).view_as(v) for s, v in zip(sq, vals)])


def _add_minibatch(model, kept, frozen, buffers, to_logp, x, y, generator, total) -> None:
    """avalanche-style: (d mean_n log p(y_n | x_n))^2 for one batch (y sampled from the model when absent)."""
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in kept.items()}
    logp = to_logp(functional_call(model, ({**frozen, **theta, **buffers},), (x,)))
    if y is None:
        with torch.no_grad():
            y = torch.multinomial(logp.exp().cpu(), 1, generator=generator).squeeze(1)
    y = y.to(x.device)
    mean = logp.gather(-1, y.view(-1, 1)).mean()
    gs = torch.autograd.grad(mean, list(theta.values()))
    torch._foreach_addcmul_(list(total.values()), list(gs), list(gs))


def _progress(data, on: bool):
    if not on:
        return data
    from tqdm.auto import tqdm

    return tqdm(data, desc="fisher", leave=False, mininterval=1.0)


# -- normalisation ------------------------------------------------------------------------------------------


def normalise(
    fisher: dict[str, torch.Tensor], how: str = "mean", *, floor: float = 0.0
) -> dict[str, torch.Tensor]:
    """``F / mean(F)`` or ``F / max(F)`` over **all** entries (so one lambda grid fits every model), then
    ``max(F, floor)``. ``how="none"`` applies only the floor."""
    if how not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {how!r}; expected one of {', '.join(NORMALISATIONS)}")
    vals = list(fisher.values())
    if how == "none":
        scale = 1.0
    else:
        n = sum(v.numel() for v in vals)
        if how == "mean":
            scale = float(torch.stack([v.double().sum() for v in vals]).sum()) / n
        else:
            scale = float(torch.stack([v.max() for v in vals]).max())
        if not scale > 0:
            raise ValueError("normalise: the Fisher is zero everywhere")
    out = torch._foreach_div(vals, scale)
    if floor > 0:
        torch._foreach_clamp_min_(out, floor)
    return dict(zip(fisher, out))


# -- files ----------------------------------------------------------------------------------------------------


def weights_fingerprint(params: dict[str, torch.Tensor] | nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a module's parameters (or a ``{name: tensor}``
    mapping), in name order: what ties a Fisher to the weights it was computed at."""
    tensors = dict(params.named_parameters()) if isinstance(params, nn.Module) else params
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_fisher(
    path: str | Path,
    fisher: dict[str, torch.Tensor],
    weights: nn.Module | dict[str, torch.Tensor],
    **meta: object,
) -> Path:
    """Write ``fisher`` to a safetensors file whose metadata records the fingerprint of ``weights`` (the
    backbone the Fisher was computed at), the parameter names, and ``meta`` (variant, samples, normalisation,
    ...; JSON-encoded). Atomic."""
    path = Path(path)
    from safetensors.torch import save_file

    tensors = dict(weights.named_parameters()) if isinstance(weights, nn.Module) else weights
    absent = sorted(set(fisher) - set(tensors))
    if absent:
        raise ValueError(f"save_fisher: Fisher entry {absent[0]!r} is not a parameter of the weights given")
    metadata = {
        "format": FORMAT,
        "weights_sha256": weights_fingerprint({n: tensors[n] for n in fisher}),
        "meta": json.dumps(meta, sort_keys=True, default=str),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(
        {n: t.detach().float().cpu().contiguous() for n, t in fisher.items()}, str(tmp), metadata=metadata
    )
    tmp.replace(path)
    return path


def read_fisher_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as e:
        raise FisherMismatch(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    out = dict(md)
    if "meta" in out:
        out["meta"] = json.loads(out["meta"])
    return out


def load_fisher(
    path: str | Path, weights: nn.Module | dict[str, torch.Tensor] | None = None, *, device=None
) -> dict[str, torch.Tensor]:
    """Read a Fisher written by :func:`save_fisher`. With ``weights``, refuse (:class:`FisherMismatch`, one
    line) a file computed at other weights, or whose names or shapes differ."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FisherMismatch(f"no Fisher file at {path}")
    md = read_fisher_metadata(path)
    if md.get("format") != FORMAT:
        raise FisherMismatch(
            f"{path}: not an ewc-ssl Fisher (format {md.get('format')!r}); use import_fisher"
        )
    fisher = load_file(str(path), device=str(device) if device is not None else "cpu")
    if weights is not None:
        tensors = dict(weights.named_parameters()) if isinstance(weights, nn.Module) else weights
        _check_shapes(path, fisher, tensors)
        got = weights_fingerprint({n: tensors[n] for n in fisher})
        if got != md.get("weights_sha256"):
            raise FisherMismatch(
                f"{path} was computed at other weights (sha256 {str(md.get('weights_sha256'))[:12]}, these "
                f"weights {got[:12]}): recompute the Fisher for this backbone"
            )
    return fisher


def _check_shapes(path, fisher: dict, tensors: dict) -> None:
    absent = sorted(set(fisher) - set(tensors))
    if absent:
        raise FisherMismatch(f"{path}: Fisher entry {absent[0]!r} is not a parameter of this model")
    for n, f in fisher.items():
        if tuple(f.shape) != tuple(tensors[n].shape):
            raise FisherMismatch(
                f"{path}: shape of {n!r} is {tuple(f.shape)}, the model's is {tuple(tensors[n].shape)}"
            )


def import_fisher(
    source: str | Path,
    model: nn.Module,
    *,
    strip_prefixes: Sequence[str] = ("module.", "backbone.", "encoder.", "model.", "teacher.", "student."),
    dest: str | Path | None = None,
    **meta: object,
) -> dict[str, torch.Tensor]:
    """Read a released diagonal Fisher (a ``{name: tensor}`` mapping in a ``.safetensors``, ``.pt`` or ``.pth``
    file, e.g. the paper's ViT-B/16 or ResNet-50 DINO FIMs) and match it to ``model``'s parameters by name,
    after stripping the usual wrapper prefixes. Names of the model without an entry are an error, as are shape
    mismatches; extra entries (a DINO head) are dropped. With ``dest``, save it with :func:`save_fisher`,
    tied to ``model``'s current weights (load the released backbone weights into ``model`` first)."""
    source = Path(source)
    if not source.is_file():
        raise FisherMismatch(f"no Fisher file at {source}")
    if source.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw = load_file(str(source))
    else:
        try:
            raw = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as e:
            raise FisherMismatch(f"{source}: cannot read ({str(e).splitlines()[0]})") from None
        for key in ("fisher", "fim", "state_dict"):
            if isinstance(raw, dict) and isinstance(raw.get(key), dict):
                raw = raw[key]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise FisherMismatch(f"{source}: expected a mapping of parameter names to tensors")

    def strip(name: str) -> str:
        changed = True
        while changed:
            changed = False
            for p in strip_prefixes:
                if name.startswith(p):
                    name, changed = name[len(p) :], True
        return name

    by_name = {strip(k): v for k, v in raw.items()}
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in by_name]
    if missing:
        raise FisherMismatch(
            f"{source}: no Fisher entry for the model's parameter {missing[0]!r} "
            f"({len(missing)} of {len(params)} missing)"
        )
    fisher = {n: by_name[n].float() for n in params}
    _check_shapes(source, fisher, params)
    if dest is not None:
        save_fisher(dest, fisher, model, imported_from=source.name, **meta)
    return fisher


# -- the outer-product identity for linear layers ------------------------------------------------------------


def linear_fisher(
    model: nn.Module,
    data: Iterable[Batch],
    *,
    variant: str = "true",
    params: Sequence[str] | None = None,
    samples: int = 1,
    max_samples: int | None = None,
    generator: torch.Generator | None = None,
    log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The same Fisher as :func:`diagonal_fisher` (variants ``true``/``empirical``) without materialising
    per-sample gradients of ``nn.Linear`` weights: for a linear layer with per-sample input ``a_n`` and output
    gradient ``delta_n``, the per-sample weight gradient is ``delta_n a_n^T``, so
    ``sum_n (delta_n a_n^T)^2 = (delta^2)^T (a^2)``: one matmul per layer from one batched backward pass (Goodfellow
    2015's trick). Parameters not of a 2-D-input ``nn.Linear`` go through :func:`diagonal_fisher` (vmap) with the
    same labels. Valid when samples do not interact in the forward pass (no batch norm in training mode)."""
    if variant not in ("true", "empirical"):
        raise ValueError("linear_fisher supports variant 'true' or 'empirical'")
    all_params = dict(model.named_parameters())
    names = [n for n, p in all_params.items() if p.requires_grad] if params is None else list(params)
    owner = {}
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            for pname in ("weight", "bias"):
                full = f"{mname}.{pname}" if mname else pname
                if full in names and getattr(mod, pname) is not None:
                    owner.setdefault(mname, mod)
    linear_names = {f"{m}.{p}" if m else p for m in owner for p in ("weight", "bias")} & set(names)
    others = [n for n in names if n not in linear_names]
    to_logp = log_prob or (lambda logits: torch.log_softmax(logits, dim=-1))
    total = {n: torch.zeros_like(all_params[n], dtype=torch.float32) for n in names}
    seen = 0
    for batch in data:
        x, y = _split_batch(batch)
        if max_samples is not None:
            x, y = x[: max_samples - seen], None if y is None else y[: max_samples - seen]
        if x.shape[0] == 0:
            break
        x = x.to(next(iter(all_params.values())).device)
        acts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        hooks = [
            mod.register_forward_hook(lambda m, i, o, k=k, acts=acts: acts.__setitem__(k, (i[0].detach(), o)))
            for k, mod in owner.items()
        ]
        try:
            logp = to_logp(model(x))
        finally:
            for h in hooks:
                h.remove()
        if any(a.dim() != 2 for a, _ in acts.values()):
            raise ValueError("linear_fisher: a linear layer saw inputs that are not [batch, features]")
        if variant == "empirical":
            if y is None:
                raise ValueError("variant='empirical' needs (x, y) batches")
            draws = y.to(x.device).view(-1, 1)
        else:
            draws = torch.multinomial(
                logp.detach().exp().cpu(), samples, replacement=True, generator=generator
            )
            draws = draws.to(x.device)
        keys = list(acts)
        outs = [acts[k][1] for k in keys]
        for s in range(draws.shape[1]):
            picked = logp.gather(-1, draws[:, s : s + 1]).sum()
            deltas = torch.autograd.grad(picked, outs, retain_graph=True)
            w = 1.0 / draws.shape[1]
            for k, delta in zip(keys, deltas):
                a = acts[k][0]
                d2 = delta.detach().square()
                prefix = f"{k}." if k else ""
                if f"{prefix}weight" in total:
                    total[f"{prefix}weight"].add_(d2.T @ a.square(), alpha=w)
                if f"{prefix}bias" in total:
                    total[f"{prefix}bias"].add_(d2.sum(0), alpha=w)
            if others:
                part = diagonal_fisher(
                    model, [(x, draws[:, s])], variant="empirical", params=others, log_prob=log_prob
                )
                for n, v in part.items():
                    total[n].add_(v, alpha=w * x.shape[0])
        seen += x.shape[0]
        if max_samples is not None and seen >= max_samples:
            break
    if seen == 0:
        raise ValueError("linear_fisher: the data gave no samples")
    torch._foreach_div_(list(total.values()), float(seen))
    return total

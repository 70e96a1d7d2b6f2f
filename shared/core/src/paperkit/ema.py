"""Model EMA with the EMA Scaling Rule (Busbridge et al., "How to Scale Your EMA", NeurIPS 2023).

After every optimizer step the EMA moves towards the model (Eq. 1 of the paper)::

    zeta <- rho_hat * zeta + (1 - rho_hat) * theta

and when the batch is ``kappa`` times the base batch, the EMA Scaling Rule (Definition 1.1) sets
``rho_hat = rho ** kappa``: one step at batch ``kappa*B`` then matches ``kappa`` steps at batch ``B`` towards a
fixed target exactly, and the coupled SDE of model and EMA is unchanged to first order. Momentum *schedules* are
functions of samples seen, so a run at any batch follows the same schedule (``rho_hat = rho(samples) ** kappa``).

Used by ema-scale (all experiments), and meant for BYOL/DINO teachers and diffusion EMAs elsewhere.

    ema = ScaledEMA(model, momentum=0.999, base_batch_size=256)
    ...
    optimizer.step()
    ema.update(model, batch_size=global_batch)     # kappa = global_batch / 256

The update is one ``torch._foreach_lerp_`` over all floating-point tensors (no per-parameter Python ops).
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

RULES = ("exp", "linear", "none")
BUFFER_POLICIES = ("ema", "copy")


def _check_momentum(rho: float, what: str = "momentum") -> float:
    rho = float(rho)
    if not (0.0 <= rho < 1.0) or math.isnan(rho):
        raise ValueError(f"{what} must lie in [0, 1), got {rho}")
    return rho


def _check_kappa(kappa: float) -> float:
    kappa = float(kappa)
    if not kappa > 0 or math.isinf(kappa):
        raise ValueError(f"kappa (batch scale) must be a positive finite number, got {kappa}")
    return kappa


def scale_momentum(rho: float, kappa: float, rule: str = "exp") -> float:
    """The momentum to use at ``kappa`` times the base batch.

    ``"exp"``: the EMA Scaling Rule, ``rho ** kappa``. ``"linear"``: its first-order form
    ``1 - kappa * (1 - rho)``, clamped at 0 (what pycls does). ``"none"``: ``rho`` unchanged.
    """
    return _scale(_check_momentum(rho), _check_kappa(kappa), rule)


def _scale(rho: float, kappa: float, rule: str) -> float:
    # rho may be exactly 1 here: a schedule such as BYOL's cosine ends there (the target stops moving)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"momentum schedule returned {rho}, outside [0, 1]")
    if rule == "exp":
        return rho**kappa
    if rule == "linear":
        return max(0.0, 1.0 - kappa * (1.0 - rho))
    if rule == "none":
        return rho
    raise ValueError(f"unknown EMA scaling rule {rule!r}; expected one of {', '.join(RULES)}")


# -- momentum schedules, defined in samples seen ----------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """rho(s) = rho."""

    rho: float

    def __post_init__(self) -> None:
        _check_momentum(self.rho)

    def __call__(self, samples: float) -> float:
        return self.rho


@dataclass(frozen=True)
class Cosine:
    """BYOL/DINO cosine increase from ``base`` to ``final`` over ``total_samples``:
    rho(s) = final - (final - base) * (cos(pi * s / S) + 1) / 2, held at ``final`` after S."""

    base: float
    final: float
    total_samples: float

    def __post_init__(self) -> None:
        _check_momentum(self.base, "base momentum")
        if not 0.0 <= self.final <= 1.0:
            raise ValueError(f"final momentum must lie in [0, 1], got {self.final}")
        if not self.total_samples > 0:
            raise ValueError(f"total_samples must be positive, got {self.total_samples}")

    def __call__(self, samples: float) -> float:
        t = min(max(samples / self.total_samples, 0.0), 1.0)
        return self.final - (self.final - self.base) * (math.cos(math.pi * t) + 1.0) / 2.0


@dataclass(frozen=True)
class Warmup:
    """timm's EMA warm-up, ``1 - (1 + step / gamma) ** -power`` capped at ``rho``, with the step counted in
    base batches (``step = samples / base_batch_size``) so that it is the same at every batch size."""

    rho: float
    base_batch_size: int
    gamma: float = 1.0
    power: float = 2.0 / 3.0

    def __post_init__(self) -> None:
        _check_momentum(self.rho)
        if self.base_batch_size <= 0 or self.gamma <= 0 or self.power <= 0:
            raise ValueError("Warmup needs base_batch_size, gamma and power > 0")

    def __call__(self, samples: float) -> float:
        step = samples / self.base_batch_size
        return min(self.rho, max(0.0, 1.0 - (1.0 + step / self.gamma) ** -self.power))


MomentumSchedule = Callable[[float], float]


def as_schedule(momentum: float | MomentumSchedule) -> MomentumSchedule:
    return Constant(momentum) if isinstance(momentum, int | float) else momentum


# -- the model EMA ------------------------------------------------------------------------------------------


class ScaledEMA(nn.Module):
    """An EMA copy of a model whose momentum follows the EMA Scaling Rule.

    Args:
        model: the model to average (a deep copy is made; the copy is in eval mode with no gradients).
        momentum: rho at the base batch, a float or a schedule ``rho(samples_seen)``.
        base_batch_size: the batch at which ``momentum`` is given; ``kappa = batch_size / base_batch_size``.
        rule: ``"exp"`` (the rule, rho ** kappa), ``"linear"`` (1 - kappa (1 - rho)), or ``"none"``.
        bias_correction: debias as if the EMA had started from zero (Adam-style). Implemented exactly as an
            EMA whose step weight is ``(1 - rho_hat) / (1 - prod(rho_hat))``; the first update copies the model.
        buffers: ``"ema"`` averages floating-point buffers (BatchNorm statistics) with the same scaled momentum,
            as timm's ModelEmaV3 does; ``"copy"`` copies them from the model. Integer buffers are always copied.
        device: keep the EMA on another device (e.g. ``"cpu"`` to save GPU memory).
        dtype: keep the EMA's floating-point tensors in this dtype (e.g. ``torch.float32`` for a bf16 model: at
            rho = 0.999 a bf16 EMA rounds most small steps away). The model's tensors are cast for the update.
        mode: ``"eval"`` (default) or ``"train"``: the mode of the copy. BYOL-style targets with BatchNorm use
            ``"train"`` (batch statistics, as in BYOL and solo-learn); evaluation uses ``"eval"``. ``train()`` and
            ``eval()`` on the ScaledEMA itself do not change it.

    The counters ``samples_seen``, ``updates`` and ``decay_product`` stay float64/int64 on the CPU whatever
    ``.to()`` does to the rest, so a bf16 cast cannot freeze the schedule.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float | MomentumSchedule = 0.999,
        *,
        base_batch_size: int = 1,
        rule: str = "exp",
        bias_correction: bool = False,
        buffers: str = "ema",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        mode: str = "eval",
    ):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown EMA scaling rule {rule!r}; expected one of {', '.join(RULES)}")
        if buffers not in BUFFER_POLICIES:
            raise ValueError(
                f"unknown buffer policy {buffers!r}; expected one of {', '.join(BUFFER_POLICIES)}"
            )
        if mode not in ("eval", "train"):
            raise ValueError(f"unknown EMA mode {mode!r}; expected 'eval' or 'train'")
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"the EMA's dtype must be a floating-point dtype, got {dtype}")
        if int(base_batch_size) <= 0:
            raise ValueError(f"base_batch_size must be positive, got {base_batch_size}")
        self.schedule = as_schedule(momentum)
        self.schedule(0.0)  # validates a constant
        self.base_batch_size = int(base_batch_size)
        self.rule = rule
        self.bias_correction = bias_correction
        self.buffers_policy = buffers
        self.mode = mode
        self.module = copy.deepcopy(model)
        self.module.train(mode == "train").requires_grad_(False)
        if device is not None or dtype is not None:
            self.module.to(device=device, dtype=dtype)
        self.register_buffer("samples_seen", torch.zeros((), dtype=torch.float64))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("decay_product", torch.ones((), dtype=torch.float64))
        self._ema_float, self._ema_int, self._ema_buf_float = self._split(self.module)
        self._slots_for = None
        self._structure: tuple[int, ...] = ()

    @staticmethod
    def _find_slots(m: nn.Module) -> tuple[list, list, list]:
        """Where a module keeps its tensors: ``(float params, integer params and buffers, float buffers)`` as
        ``(dict, name)`` pairs, each tensor once (tied weights appear once, as in ``parameters()``)."""
        seen: set[int] = set()
        slots: tuple[list, list, list] = ([], [], [])
        for table in ("_parameters", "_buffers"):
            for mod in m.modules():
                d = getattr(mod, table)
                for name, t in d.items():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    if not t.is_floating_point():
                        slots[1].append((d, name))
                    else:
                        slots[0 if table == "_parameters" else 2].append((d, name))
        return slots

    @classmethod
    def _split(cls, m: nn.Module) -> tuple[list, list, list]:
        return tuple([d[n] for d, n in group] for group in cls._find_slots(m))

    def _source_tensors(self, model: nn.Module) -> tuple[list, list, list]:
        """The model's tensors in the EMA's order. The slots (which dict holds which tensor) are found once per
        model and module structure: a submodule replaced after the first update changes the structure (the ids
        of its modules), and the slots are found again. Lookups see parameters or buffers that ``.to()``
        replaced."""
        structure = tuple(map(id, model.modules()))
        if self._slots_for is None or self._slots_for() is not model or structure != self._structure:
            self._src_slots, self._slots_for = self._find_slots(model), weakref.ref(model)
            self._structure = structure
        return tuple([d[n] for d, n in group] for group in self._src_slots)

    def train(self, mode: bool = True):  # the copy keeps the mode chosen at construction
        self.training = mode
        return self

    def momentum_at(self, batch_size: int | None = None, samples_seen: float | None = None) -> float:
        """The momentum ``rho_hat`` an update at ``batch_size`` would use now."""
        bs = self.base_batch_size if batch_size is None else batch_size
        s = float(self.samples_seen) if samples_seen is None else samples_seen
        return _scale(float(self.schedule(s)), _check_kappa(bs / self.base_batch_size), self.rule)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, model: nn.Module, batch_size: int | None = None) -> float:
        """Move the EMA towards ``model`` after one optimizer step on a (global) batch of ``batch_size``.
        Returns the step weight ``1 - rho_hat`` (after bias correction) that was applied."""
        if batch_size is not None and batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        bs = self.base_batch_size if batch_size is None else int(batch_size)
        rho_hat = self.momentum_at(bs)
        weight = 1.0 - rho_hat
        if self.bias_correction:
            prod = float(self.decay_product) * rho_hat
            weight = weight / (1.0 - prod) if prod < 1.0 else 1.0
            self.decay_product.fill_(prod)
        model = (
            getattr(model, "module", model)
            if isinstance(model, nn.parallel.DistributedDataParallel)
            else model
        )
        m_float, m_int, m_buf_float = self._source_tensors(model)
        if len(m_float) != len(self._ema_float) or len(m_buf_float) != len(self._ema_buf_float):
            raise ValueError("update() got a model whose parameters do not match the EMA's")
        ema_t, src_t = self._ema_float, m_float
        if self.buffers_policy == "ema":
            ema_t, src_t = ema_t + self._ema_buf_float, src_t + m_buf_float
        elif self._ema_buf_float:
            torch._foreach_copy_(self._ema_buf_float, m_buf_float)
        if src_t and (src_t[0].device != ema_t[0].device or src_t[0].dtype != ema_t[0].dtype):
            # host -> device copies may overlap (the lerp runs on the same stream after them); a copy *to* the
            # CPU must be complete before the CPU reads it, so it blocks
            dev, dt = ema_t[0].device, ema_t[0].dtype
            src_t = [t.to(dev, dtype=dt, non_blocking=dev.type == "cuda") for t in src_t]
        if ema_t:
            if weight >= 1.0:
                torch._foreach_copy_(ema_t, src_t)
            else:
                torch._foreach_lerp_(ema_t, src_t, weight)
        for e, m in zip(self._ema_int, m_int):
            e.copy_(m)
        self.samples_seen.add_(bs)
        self.updates.add_(1)
        return weight

    _COUNTERS = ("samples_seen", "updates", "decay_product")

    def _apply(self, fn, recurse=True):
        # .to()/.cuda()/.bfloat16() replace tensors: keep the counters exact (float64/int64 on the CPU) and
        # refresh the cached tensor lists
        counters = {k: getattr(self, k).detach().to("cpu").clone() for k in self._COUNTERS}
        out = super()._apply(fn, recurse)
        for k, v in counters.items():
            self._buffers[k] = v
        self._ema_float, self._ema_int, self._ema_buf_float = self._split(self.module)
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = dict(state_dict)
        for k, dt in (
            ("samples_seen", torch.float64),
            ("updates", torch.long),
            ("decay_product", torch.float64),
        ):
            if k in state_dict:
                state_dict[k] = state_dict[k].to("cpu", dt)
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._ema_float, self._ema_int, self._ema_buf_float = self._split(self.module)
        return out

    def extra_repr(self) -> str:
        return (
            f"rule={self.rule}, base_batch_size={self.base_batch_size}, "
            f"bias_correction={self.bias_correction}, buffers={self.buffers_policy}, mode={self.mode}"
        )

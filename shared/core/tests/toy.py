"""A tiny trainer used by the core's tests: linear regression by SGD, checkpointed and resumable."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from paperkit import BaseConfig, Run, knob, run_trainer
from paperkit.device import seed_everything, step_generator

PRESETS = {"smoke": {"steps": 50}, "default": {}, "paper": {"steps": 100000}}


@dataclass
class ToyConfig(BaseConfig):
    steps: int = knob(80, "SGD steps", low=1)
    lr: float = knob(0.01, "learning rate", low=0, low_open=True)
    batch_size: int = knob(8, "batch size", low=1)
    kappas: tuple[int, ...] = knob((1, 2), "batch scales", low=1)
    name: str = knob("toy", "a label")
    blow_up_at: int = knob(-1, "make the loss NaN at this step (tests)")
    slow: float = knob(0.0, "sleep this long per step (tests)", low=0)


def body(cfg: ToyConfig, run: Run) -> dict:
    import time

    seed_everything(cfg.seed)
    w_true = torch.arange(4.0)
    model = torch.nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    ckpt = run.checkpoint("toy")
    start = 0
    if ckpt.exists():
        start, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        opt.load_state_dict(state["optimizer"])

    def save(step: int) -> None:
        ckpt.save(step, {"model": model}, {"optimizer": opt.state_dict()})

    for step in run.steps(cfg.steps, start=start, desc="toy", save=save):
        g = step_generator(cfg.seed, step)
        x = torch.randn(cfg.batch_size, 4, generator=g)
        y = x @ w_true + 0.1 * torch.randn(cfg.batch_size, generator=g) + torch.randn(1).item() * 0
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        if step == cfg.blow_up_at:
            loss = loss * float("nan")
        run.check_finite(loss.item(), where=f"step {step}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log(step=step, loss=loss.item())
        if cfg.slow:
            time.sleep(cfg.slow)
    save(cfg.steps)
    err = float((model.weight.detach().squeeze() - w_true).norm())
    run.claim("fits", "the weights come within 0.5 of the truth", err, "<=", 0.5)
    run.claim("impossible", "the error is negative", err, "<", 0.0)
    return {"error": err}


def main(argv=None) -> int:
    return run_trainer(package="toy", config_cls=ToyConfig, presets=PRESETS, body=body, argv=argv)

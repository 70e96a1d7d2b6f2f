"""``run_trainer``: the life of one ``train`` invocation, shared by every trainer.

Parse the config (one-line errors, exit 2), open the run folder, run the trainer's body with Ctrl-C/SIGTERM
turned into "save and stop" (exit 130), stop on NaN/inf losses (exit 1), write ``summary.json``, print the claims
table, and with ``--strict`` exit 1 when a claim failed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from .config import ConfigError, parse, to_dict
from .run import AlreadyFinished, Interrupted, NonFiniteLoss, Run


@contextlib.contextmanager
def limit_threads(n: int):
    """Cap torch's CPU threads and the BLAS/OpenMP pools under numpy and scikit-learn at ``n`` (0: no change).
    Oversubscribed threads are the commonest way a small CPU job becomes many times slower on a shared machine."""
    if not n:
        yield
        return
    try:
        import torch
    except ImportError:
        torch = None
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(n)
    try:
        with limits:
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)


def _load(spec: str) -> Callable[[Any, Run], dict]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"trainer body must be 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def run_trainer(
    *,
    package: str,
    config_cls: type,
    presets: dict[str, dict],
    body: Callable[[Any, Run], dict] | str,
    argv: list[str] | None = None,
    description: str = "",
) -> int:
    """Run ``body(cfg, run) -> results`` as the ``train`` command of ``package``; return the exit status.

    ``body`` may be ``"module:function"``: it is imported after the command line is parsed, so ``--help`` and
    config errors never import the trainer's torch modules."""
    prog = f"train ({package})"
    try:
        cfg, opts = parse(config_cls, presets, argv, prog=prog, description=description)
        if isinstance(body, str):
            body = _load(body)
        if (
            int(os.environ.get("WORLD_SIZE", "1")) > 1
        ):  # torchrun: the run folder is decided on rank 0 for all
            from .distributed import init

            init(getattr(cfg, "device", "auto"))
        run = Run.open(package, to_dict(cfg, opts.preset), out=opts.out, resume=opts.resume)
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except AlreadyFinished as e:
        print(f"{package}: {e}; nothing to do")
        return 0
    if run.is_main:
        verb = "resuming" if run.resuming else "writing"
        print(f"{package}: preset {opts.preset}, {verb} {run.out}", flush=True)
    try:
        with run, limit_threads(getattr(cfg, "threads", 0)):
            results = body(cfg, run)
            run.finish(results)  # inside the thread cap: the provenance records the threads the run used
    except Interrupted as e:
        if run.is_main:
            print(
                f"{package}: interrupted ({e}); state saved. Continue with: train --resume {run.out}",
                file=sys.stderr,
            )
        return 130
    except NonFiniteLoss as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if run.is_main:
        print(run.claims_table())
        print(f"{package}: results in {run.out / 'summary.json'}")
    failed = [c.id for c in run.claims if not c.passed]
    if opts.strict and failed:
        if run.is_main:
            print(f"{prog}: --strict: {len(failed)} claim(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

"""The body of ``ewc-ssl``'s ``train`` command: the recipe described in :mod:`ewc_ssl.config` (``train --help``)."""

from __future__ import annotations

from paperkit import Run, run_trainer

from .config import DESCRIPTION, PRESETS, Config


def body(cfg: Config, run: Run) -> dict:
    if cfg.experiment == "waterbirds":
        from .waterbirds import run_waterbirds

        return run_waterbirds(cfg, run)
    from .experiment import run_digits

    return run_digits(cfg, run)


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="ewc-ssl", config_cls=Config, presets=PRESETS, body=body, argv=argv, description=DESCRIPTION
    )

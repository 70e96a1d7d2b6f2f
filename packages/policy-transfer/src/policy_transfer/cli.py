"""``train`` for policy-transfer: parse the config without importing torch, then run
:func:`policy_transfer.train.body`."""

from __future__ import annotations

from paperkit.launch import run_trainer

from .config import DESCRIPTION, PRESETS, Config


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="policy-transfer",
        config_cls=Config,
        presets=PRESETS,
        body="policy_transfer.train:body",
        argv=argv,
        description=DESCRIPTION,
    )

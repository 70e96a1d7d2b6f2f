"""``train`` for ewc-ssl: parse the config without importing torch, then run :func:`ewc_ssl.train.body`."""

from __future__ import annotations

from paperkit.launch import run_trainer

from .config import DESCRIPTION, PRESETS, Config


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="ewc-ssl",
        config_cls=Config,
        presets=PRESETS,
        body="ewc_ssl.train:body",
        argv=argv,
        description=DESCRIPTION,
    )

"""paperkit: the shared core of the papers monorepo.

Torch-free: :mod:`paperkit.config` (dataclass config and CLI), :mod:`paperkit.run` (the run folder),
:mod:`paperkit.claims`, :mod:`paperkit.launch`, :mod:`paperkit.dispatch` (the ``train`` command).
With the ``torch`` extra: :mod:`paperkit.ema` (model EMA with the EMA Scaling Rule), :mod:`paperkit.checkpoint`,
:mod:`paperkit.device`, :mod:`paperkit.distributed`, :mod:`paperkit.data`, :mod:`paperkit.evaluation`.
"""

from importlib.metadata import version

from .claims import Claim
from .config import BaseConfig, ConfigError, knob
from .launch import run_trainer
from .run import Interrupted, NonFiniteLoss, Run

__version__ = version("paperkit")
__all__ = ["BaseConfig", "Claim", "ConfigError", "Interrupted", "NonFiniteLoss", "Run", "knob", "run_trainer"]

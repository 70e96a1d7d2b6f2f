"""`python -m policy_transfer [options]`: this package's trainer, whichever `train` command is first on PATH."""

import os
import sys

from .cli import main

os.environ.setdefault(
    "PAPERKIT_TRAINER", "policy-transfer"
)  # processes the trainer spawns pick the same trainer
sys.exit(main())

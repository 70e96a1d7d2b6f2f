"""The package's gymnasium ids, registered on ``import policy_transfer`` by string entry points: registering
imports gymnasium only (not torch), so ``train --help`` stays fast and specs can be rebuilt and pickled anywhere
the package is importable."""

from __future__ import annotations

from .config import MOVED_GOAL_ID

GRID_ID = "PolicyTransfer/GridWorld-v0"


def register() -> None:
    """Register ``PolicyTransfer/GridWorld-v0`` and the MiniGrid moved-goal task (idempotent)."""
    import gymnasium as gym

    if GRID_ID not in gym.registry:
        gym.register(id=GRID_ID, entry_point="policy_transfer.gridworld:GridWorldEnv")
    if MOVED_GOAL_ID not in gym.registry:
        gym.register(id=MOVED_GOAL_ID, entry_point="policy_transfer.envs:MovedGoalEmptyEnv")

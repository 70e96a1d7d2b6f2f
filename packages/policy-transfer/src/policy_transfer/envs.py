"""Vector environments as the learners see them, and the MiniGrid transfer tasks.

Every learner here talks to a *torch vector env*: ``num_envs``, ``n_actions``, ``obs_kind`` (``"index"`` for a
cell index, ``"vector"`` for a float vector of ``obs_dim``), ``reset(seed) -> obs`` and
``step(actions) -> (obs, reward, terminated, truncated, final_obs)``, all torch tensors, with same-step autoreset
(``obs`` is already the reset observation where an episode ended; ``final_obs`` is the observation that ended it).
:class:`~policy_transfer.gridworld.BatchedGridWorld` is one natively; :class:`GymVectorEnv` wraps a gymnasium
``SyncVectorEnv`` created with ``autoreset_mode=SAME_STEP``.

MiniGrid: :class:`MovedGoalEmptyEnv` is minigrid's ``EmptyEnv`` with the goal cell as a parameter (registered as
``PolicyTransfer/MiniGrid-MovedGoal-v0``); ``MiniGrid-FourRooms-v0`` takes ``agent_pos``/``goal_pos`` natively.
Observations are minigrid's partially observable egocentric 7x7x3 image (:class:`ImageObs`, ``ImgObsWrapper``
that can be rebuilt from its spec), flattened and
divided by 10.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from .config import MOVED_GOAL_ID
from .gridworld import ENV_ID as GRID_ID
from .gridworld import BatchedGridWorld, GridError, GridWorldEnv
from .gridworld import register as register_grid


class EnvError(ValueError):
    """An unknown environment id or bad task parameters."""


class GymVectorEnv:
    """A gymnasium ``SyncVectorEnv`` (same-step autoreset) seen through torch tensors.

    ``obs_fn`` maps the batched numpy observation to a tensor (default: ``float32`` flattened per env, divided by
    ``obs_scale``). Discrete observations stay integer cell indices (``obs_kind == "index"``).
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        obs_scale: float = 1.0,
        n_actions: int | None = None,
        device: torch.device | str = "cpu",
    ):
        self.envs = gym.vector.SyncVectorEnv(
            list(env_fns), autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, copy=False
        )
        self.num_envs = self.envs.num_envs
        self.device = torch.device(device)
        space = self.envs.single_observation_space
        self.single_observation_space = space
        self.single_action_space = self.envs.single_action_space
        self.n_actions = int(n_actions or self.single_action_space.n)
        if self.n_actions > self.single_action_space.n:
            raise EnvError(f"n_actions {self.n_actions} > the env's {self.single_action_space.n} actions")
        if isinstance(space, gym.spaces.Discrete):
            self.obs_kind, self.n_obs, self.obs_dim = "index", int(space.n), None
        else:
            self.obs_kind, self.n_obs, self.obs_dim = "vector", None, int(np.prod(space.shape))
        self.obs_scale = float(obs_scale)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        """A fresh tensor (the vector env reuses its numpy buffer, created with ``copy=False``)."""
        if self.obs_kind == "index":
            return torch.tensor(np.asarray(obs), dtype=torch.long, device=self.device)
        x = torch.from_numpy(obs).reshape(self.num_envs, -1).to(self.device, torch.float32)
        return x.div_(self.obs_scale) if self.obs_scale != 1.0 else x

    def reset(self, seed: int | None = None) -> torch.Tensor:
        obs, _ = self.envs.reset(seed=seed)
        return self._obs(obs)

    def step(self, actions: torch.Tensor):
        obs, reward, terminated, truncated, infos = self.envs.step(actions.cpu().numpy())
        obs_t = self._obs(obs)
        final_t = obs_t
        mask = infos.get("_final_obs")
        if mask is not None and mask.any():
            final = np.array(obs, copy=True)
            final[mask] = np.stack(infos["final_obs"][mask])
            final_t = self._obs(final)
        return (
            obs_t,
            torch.from_numpy(reward.astype(np.float32)).to(self.device),
            torch.from_numpy(terminated).to(self.device),
            torch.from_numpy(truncated).to(self.device),
            final_t,
        )

    def close(self) -> None:
        self.envs.close()


# -- MiniGrid ----------------------------------------------------------------------------------------------


@functools.cache
def _moved_goal_class():
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import Goal
    from minigrid.envs import EmptyEnv

    class MovedGoalEmptyEnv(EmptyEnv):
        """minigrid's ``EmptyEnv`` (a walled ``size`` x ``size`` room) with the goal at ``goal_pos`` (x, y).

        The default goal is minigrid's (the bottom-right inner corner), so ``goal_pos=None`` is
        ``MiniGrid-Empty-{size}x{size}-v0``.
        """

        def __init__(
            self,
            size: int = 6,
            goal_pos: Sequence[int] | None = None,
            agent_start_pos: Sequence[int] = (1, 1),
            agent_start_dir: int = 0,
            max_steps: int | None = None,
            **kwargs,
        ):
            if int(size) < 4:
                raise EnvError(f"size must be >= 4, got {size}")
            goal = (size - 2, size - 2) if goal_pos is None else tuple(int(v) for v in goal_pos)
            for what, (x, y) in (("goal_pos", goal), ("agent_start_pos", tuple(agent_start_pos))):
                if not (1 <= x <= size - 2 and 1 <= y <= size - 2):
                    raise EnvError(
                        f"{what} {(x, y)} is in a wall of the {size}x{size} room; use x, y in 1..{size - 2}"
                    )
            if goal == tuple(agent_start_pos):
                raise EnvError(f"goal_pos {goal} is the agent's start cell")
            self.goal_pos = goal
            super().__init__(
                size=size,
                agent_start_pos=tuple(agent_start_pos),
                agent_start_dir=agent_start_dir,
                max_steps=max_steps,
                **kwargs,
            )

        def _gen_grid(self, width, height):
            self.grid = Grid(width, height)
            self.grid.wall_rect(0, 0, width, height)
            self.put_obj(Goal(), *self.goal_pos)
            self.agent_pos = self.agent_start_pos
            self.agent_dir = self.agent_start_dir
            self.mission = "get to the green goal square"

    return MovedGoalEmptyEnv


def __getattr__(name: str):
    if name == "MovedGoalEmptyEnv":  # built lazily: importing minigrid costs about a second
        return _moved_goal_class()
    raise AttributeError(name)


class ImageObs(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """minigrid's ``ImgObsWrapper`` (the dict observation's ``image`` only), recording its constructor arguments
    so that ``gymnasium.make(env.spec)`` rebuilds the wrapped env (minigrid's own wrapper cannot be recreated
    from a spec, so its envs failed ``check_env``)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = env.observation_space.spaces["image"]

    def observation(self, obs):
        return obs["image"]


def register() -> None:
    """Register this package's environment ids with gymnasium (idempotent). The moved-goal env's entry point is
    a string, so that its spec can be rebuilt (and pickled) anywhere the package is importable."""
    register_grid()  # both ids (policy_transfer.registration)


def known_ids() -> list[str]:
    register()
    try:
        import minigrid  # noqa: F401  (registers MiniGrid-*)
    except ImportError:  # pragma: no cover
        pass
    return [GRID_ID, MOVED_GOAL_ID, *sorted(k for k in gym.registry if k.startswith("MiniGrid-"))]


def _check_fourrooms(kwargs: dict) -> None:
    size = 19
    for what in ("goal_pos", "agent_pos"):
        pos = kwargs.get(what)
        if pos is None:
            continue
        x, y = (int(v) for v in pos)
        if not (1 <= x <= size - 2 and 1 <= y <= size - 2) or x == size // 2 or y == size // 2:
            raise EnvError(
                f"{what} {(x, y)} is in a wall of MiniGrid-FourRooms-v0 (walls: the border, x = 9 and y = 9)"
            )


def make_minigrid(env_id: str, **kwargs) -> gym.Env:
    """One MiniGrid env with :class:`ImageObs` (a 7x7x3 partially observable image). Bad ids or cells: EnvError.

    The env passes gymnasium's ``check_env`` and ``gymnasium.make(env.spec)`` rebuilds it (tested)."""
    ids = known_ids()
    if env_id not in ids or env_id == GRID_ID:
        raise EnvError(f"unknown MiniGrid environment id {env_id!r}; known: {MOVED_GOAL_ID}, MiniGrid-*-v0")
    if env_id == "MiniGrid-FourRooms-v0":
        _check_fourrooms(kwargs)
    try:
        env = gym.make(env_id, disable_env_checker=True, **kwargs)
    except TypeError as e:
        raise EnvError(f"{env_id} does not accept {sorted(kwargs)}: {e}") from None
    return ImageObs(env)


def make_vector_env(
    env_id: str,
    num_envs: int,
    *,
    batched: bool = True,
    n_actions: int | None = None,
    device: torch.device | str = "cpu",
    **task,
):
    """A torch vector env for ``env_id``.

    - ``PolicyTransfer/GridWorld-v0``: ``task`` holds ``layout``, ``start``, ``goal`` (one cell or one per env),
      ``max_steps``; ``batched=True`` gives the tensor twin, ``batched=False`` a ``SyncVectorEnv`` of
      :class:`~policy_transfer.gridworld.GridWorldEnv`.
    - ``PolicyTransfer/MiniGrid-MovedGoal-v0`` (``size``, ``goal_pos``, ``agent_start_pos``) and any
      ``MiniGrid-*`` id (``MiniGrid-FourRooms-v0`` takes ``agent_pos``, ``goal_pos``): a ``SyncVectorEnv`` of image
      observations flattened and scaled by 1/10. ``n_actions`` keeps the first actions only (3 = turn left, turn
      right, forward).

    An unknown id, or a goal in a wall, raises :class:`EnvError` (or :class:`GridError`) naming the problem.
    """
    if int(num_envs) < 1:
        raise EnvError(f"num_envs must be >= 1, got {num_envs}")
    register()
    if env_id == GRID_ID:
        goal = task.pop("goal", (0, 8))
        goals = list(goal) if goal and not isinstance(goal[0], int | np.integer) else [goal]
        if batched:
            return BatchedGridWorld(goals=goals, num_envs=num_envs, device=device, **task)
        if len(goals) == 1:
            goals = goals * num_envs
        if len(goals) != num_envs:
            raise GridError(f"{len(goals)} goals for {num_envs} environments")
        for g in goals:  # fail here, not inside the vector env's constructor
            GridWorldEnv(goal=g, **task)
        return GymVectorEnv(
            [lambda g=g: GridWorldEnv(goal=g, **task) for g in goals], n_actions=n_actions, device=device
        )
    ids = known_ids()
    if env_id not in ids:
        raise EnvError(
            f"unknown environment id {env_id!r}; known: {GRID_ID}, {MOVED_GOAL_ID} and minigrid's MiniGrid-*-v0 "
            f"ids (e.g. MiniGrid-Empty-6x6-v0, MiniGrid-FourRooms-v0)"
        )
    make_minigrid(env_id, **task).close()  # validate the task once, outside the vector env
    return GymVectorEnv(
        [lambda: make_minigrid(env_id, **task) for _ in range(int(num_envs))],
        obs_scale=10.0,
        n_actions=n_actions,
        device=device,
    )

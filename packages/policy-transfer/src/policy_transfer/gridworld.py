"""A fully observable GridWorld (the paper's "Easy MDP" setting) and its batched twin.

Two implementations of one MDP:

- :class:`GridWorldEnv`, a ``gymnasium.Env`` (registered as ``PolicyTransfer/GridWorld-v0``) that passes
  ``gymnasium.utils.env_checker.check_env``;
- :class:`BatchedGridWorld`, ``B`` copies stepped as tensor ops (one table lookup per step), each copy with its
  own goal, with the same-step autoreset of ``gymnasium.vector.AutoresetMode.SAME_STEP``. With a fixed start it
  produces exactly what a ``SyncVectorEnv`` of :class:`GridWorldEnv` in that mode produces (tested).

The MDP: a layout of free cells and walls; four actions (0 up, 1 right, 2 down, 3 left); moving into a wall or off
the grid leaves the agent in place; reaching the goal gives ``goal_reward`` and terminates; every other step gives
``step_reward``; an episode is truncated after ``max_steps`` steps. The observation is the agent's cell index
``row * width + col`` (``Discrete(height * width)``), so the goal is a property of the task, not of the
observation: one task per goal, which is what the transfer experiments vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .registration import GRID_ID as ENV_ID  # noqa: F401  (the id, registered on import of the package)

ACTIONS = ("up", "right", "down", "left")
MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)])

# Sutton, Precup and Singh's four rooms, outer walls included (13 x 13, 104 free cells).
FOUR_ROOMS = """
#############
#.....#.....#
#.....#.....#
#...........#
#.....#.....#
#.....#.....#
##.####.....#
#.....###.###
#.....#.....#
#.....#.....#
#...........#
#.....#.....#
#############
"""

# A ring of 12 cells around a 1x3 block (5 x 7 with the outer walls): two equal routes from (2, 1) to (2, 5), one
# along the top row and one along the bottom row. Targets in the middle of either row lie on one route only.
RING = """
#######
#.....#
#.###.#
#.....#
#######
"""


class GridError(ValueError):
    """A bad layout, start or goal."""


@dataclass(frozen=True)
class Layout:
    """Walls of a grid (``True`` = wall), with the transition table every environment here steps with."""

    walls: np.ndarray
    name: str = "custom"

    @property
    def height(self) -> int:
        return int(self.walls.shape[0])

    @property
    def width(self) -> int:
        return int(self.walls.shape[1])

    @property
    def n_cells(self) -> int:
        return self.height * self.width

    def index(self, cell: Sequence[int]) -> int:
        r, c = int(cell[0]), int(cell[1])
        return r * self.width + c

    def cell(self, index: int) -> tuple[int, int]:
        return divmod(int(index), self.width)

    def is_free(self, cell: Sequence[int]) -> bool:
        r, c = int(cell[0]), int(cell[1])
        return 0 <= r < self.height and 0 <= c < self.width and not self.walls[r, c]

    def check_cell(self, cell: Sequence[int], what: str) -> tuple[int, int]:
        """Return ``cell`` as a tuple, or raise :class:`GridError` naming ``what`` when it is not a free cell."""
        try:
            r, c = (int(v) for v in cell)
        except (TypeError, ValueError):
            raise GridError(f"{what} must be a (row, col) pair, got {cell!r}") from None
        if not (0 <= r < self.height and 0 <= c < self.width):
            raise GridError(f"{what} {(r, c)} is outside the {self.height}x{self.width} grid {self.name!r}")
        if self.walls[r, c]:
            raise GridError(f"{what} {(r, c)} is a wall in layout {self.name!r}; choose a free cell")
        return (r, c)

    def free_cells(self) -> list[tuple[int, int]]:
        return [(int(r), int(c)) for r, c in zip(*np.nonzero(~self.walls))]

    def transitions(self) -> np.ndarray:
        """``[n_cells, 4]`` next-cell indices (walls and edges keep the agent in place)."""
        table = np.zeros((self.n_cells, len(ACTIONS)), dtype=np.int64)
        for r in range(self.height):
            for c in range(self.width):
                for a, (dr, dc) in enumerate(MOVES):
                    nr, nc = r + dr, c + dc
                    ok = 0 <= nr < self.height and 0 <= nc < self.width and not self.walls[nr, nc]
                    table[r * self.width + c, a] = nr * self.width + nc if ok else r * self.width + c
        return table

    def distances(self, source: Sequence[int]) -> np.ndarray:
        """Shortest-path distances (in steps) from ``source`` to every cell; -1 where unreachable."""
        src = self.index(self.check_cell(source, "source"))
        table = self.transitions()
        dist = np.full(self.n_cells, -1, dtype=np.int64)
        dist[src] = 0
        frontier = [src]
        while frontier:
            nxt = []
            for s in frontier:
                for t in table[s]:
                    if dist[t] < 0:
                        dist[t] = dist[s] + 1
                        nxt.append(int(t))
            frontier = nxt
        return dist.reshape(self.height, self.width)


def parse_layout(text: str, name: str = "custom") -> Layout:
    """A layout from text: ``#`` is a wall, ``.`` (or a space) a free cell; blank lines are ignored."""
    rows = [line.rstrip("\n") for line in text.strip("\n").splitlines() if line.strip()]
    if not rows:
        raise GridError("empty layout")
    width = max(len(r) for r in rows)
    bad = {ch for r in rows for ch in r} - {"#", ".", " "}
    if bad:
        raise GridError(f"layout {name!r}: unknown characters {sorted(bad)} (use '#' and '.')")
    walls = np.array([[ch == "#" for ch in r.ljust(width, "#")] for r in rows], dtype=bool)
    if walls.all():
        raise GridError(f"layout {name!r} has no free cell")
    return Layout(walls, name)


def make_layout(name: str | Layout) -> Layout:
    """``"open9"`` (an open N x N room for any N >= 2), ``"four_rooms"``, ``"ring"``, or a :class:`Layout`."""
    if isinstance(name, Layout):
        return name
    if name == "four_rooms":
        return parse_layout(FOUR_ROOMS, "four_rooms")
    if name == "ring":
        return parse_layout(RING, "ring")
    if name.startswith("open") and name[4:].isdigit() and int(name[4:]) >= 2:
        n = int(name[4:])
        return Layout(np.zeros((n, n), dtype=bool), name)
    raise GridError(f"unknown layout {name!r}; use open<N> (e.g. open9), four_rooms or ring")


class GridWorldEnv(gym.Env):
    """One GridWorld task: a layout, a start cell and a goal cell.

    >>> env = GridWorldEnv("open5", start=(2, 2), goal=(0, 4), max_steps=20)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(1)   # right

    ``start=None`` draws the start uniformly from the free cells other than the goal at every reset.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        layout: str | Layout = "open9",
        start: Sequence[int] | None = (4, 4),
        goal: Sequence[int] = (0, 8),
        max_steps: int = 40,
        goal_reward: float = 1.0,
        step_reward: float = 0.0,
        render_mode: str | None = None,
    ):
        self.layout = make_layout(layout)
        self.goal = self.layout.check_cell(goal, "goal")
        self.start = None if start is None else self.layout.check_cell(start, "start")
        if self.start is not None and self.start == self.goal:
            raise GridError(f"start and goal are the same cell {self.goal}")
        if int(max_steps) < 1:
            raise GridError(f"max_steps must be >= 1, got {max_steps}")
        if render_mode not in (None, "ansi"):
            raise GridError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.max_steps = int(max_steps)
        self.goal_reward = float(goal_reward)
        self.step_reward = float(step_reward)
        self.render_mode = render_mode
        self._table = self.layout.transitions()
        self._goal = self.layout.index(self.goal)
        self._starts = np.array(
            [self.layout.index(c) for c in self.layout.free_cells() if c != self.goal], dtype=np.int64
        )
        self.observation_space = gym.spaces.Discrete(self.layout.n_cells)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        self._pos = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.start is None:
            self._pos = int(self.np_random.choice(self._starts))
        else:
            self._pos = self.layout.index(self.start)
        self._t = 0
        return self._pos, {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise GridError(f"action must be one of 0..3 ({', '.join(ACTIONS)}), got {action!r}")
        self._pos = int(self._table[self._pos, int(action)])
        self._t += 1
        terminated = self._pos == self._goal
        truncated = (not terminated) and self._t >= self.max_steps
        reward = self.goal_reward if terminated else self.step_reward
        return self._pos, float(reward), bool(terminated), bool(truncated), {}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = []
        for r in range(self.layout.height):
            line = []
            for c in range(self.layout.width):
                idx = r * self.layout.width + c
                line.append(
                    "A"
                    if idx == self._pos
                    else "G"
                    if idx == self._goal
                    else "#"
                    if self.layout.walls[r, c]
                    else "."
                )
            rows.append("".join(line))
        return "\n".join(rows) + "\n"


def register() -> None:
    """Register ``PolicyTransfer/GridWorld-v0`` with gymnasium (idempotent; done on import of the package)."""
    from .registration import register as register_all

    register_all()


class BatchedGridWorld:
    """``B`` GridWorld tasks on one layout stepped as tensor ops, with same-step autoreset.

    ``goals`` is one cell per copy (or one cell for all), so one batch can hold many tasks: the transfer
    experiments put every (run, target goal) pair in one batch. ``step`` returns what a gymnasium vector env in
    ``SAME_STEP`` mode returns: the next observation (already the reset observation where the episode ended),
    reward, terminated, truncated, and the observation that ended the episode (``final_obs``; equal to the
    observation elsewhere).
    """

    def __init__(
        self,
        layout: str | Layout,
        goals: Sequence[Sequence[int]] | Sequence[int],
        num_envs: int | None = None,
        start: Sequence[int] | None = (4, 4),
        max_steps: int = 40,
        goal_reward: float = 1.0,
        step_reward: float = 0.0,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ):
        self.layout = make_layout(layout)
        goals = list(goals)
        if goals and isinstance(goals[0], int | np.integer):
            goals = [goals]
        cells = [self.layout.check_cell(g, "goal") for g in goals]
        if num_envs is None:
            num_envs = len(cells)
        if len(cells) == 1:
            cells = cells * num_envs
        if len(cells) != num_envs:
            raise GridError(f"{len(cells)} goals for {num_envs} environments")
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.start = None if start is None else self.layout.check_cell(start, "start")
        if self.start is not None and self.start in cells:
            raise GridError(f"start {self.start} is also a goal")
        if int(max_steps) < 1:
            raise GridError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = int(max_steps)
        self.goal_reward = float(goal_reward)
        self.step_reward = float(step_reward)
        self.n_actions = len(ACTIONS)
        self.n_obs = self.layout.n_cells
        self.generator = generator
        self._table = torch.as_tensor(self.layout.transitions(), device=self.device)
        self._flat_table = self._table.reshape(-1)
        self.goals = torch.tensor([self.layout.index(c) for c in cells], device=self.device)
        self._free = torch.tensor(
            [self.layout.index(c) for c in self.layout.free_cells()], device=self.device
        )
        self._goal_rank = torch.searchsorted(self._free, self.goals)
        if start is None and len(self._free) < 2:
            raise GridError("random starts need at least two free cells")
        self.pos = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    # the observation and action spaces of one copy, as gymnasium vector envs name them
    @property
    def single_observation_space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(self.n_obs)

    @property
    def single_action_space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(self.n_actions)

    def _starts(self, n: int) -> torch.Tensor:
        if self.start is not None:
            return torch.full((n,), self.layout.index(self.start), dtype=torch.long, device=self.device)
        # uniform over the free cells other than each copy's goal (like GridWorldEnv): draw a rank among the
        # n_free - 1 allowed cells and skip the goal's rank
        idx = torch.randint(len(self._free) - 1, (n,), generator=self.generator, device="cpu").to(self.device)
        return self._free[idx + (idx >= self._goal_rank).long()]

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))
        self.pos = self._starts(self.num_envs)
        self.t = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        return self.pos.clone()

    def step(self, actions: torch.Tensor):
        """Advance every copy by one action; returns ``(obs, reward, terminated, truncated, final_obs)``."""
        nxt = self._flat_table[self.pos * self.n_actions + actions]
        t = self.t + 1
        terminated = nxt == self.goals
        truncated = (t >= self.max_steps) & ~terminated
        done = terminated | truncated
        reward = torch.where(terminated, self.goal_reward, self.step_reward)
        self.pos = torch.where(done, self._starts(1 if self.start is not None else self.num_envs), nxt)
        self.t = torch.where(done, 0, t)
        return self.pos.clone(), reward, terminated, truncated, nxt

    def state_dict(self) -> dict:
        state = {"pos": self.pos.clone(), "t": self.t.clone()}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.pos = state["pos"].to(self.device).clone()
        self.t = state["t"].to(self.device).clone()
        if "generator" in state:
            self.generator = self.generator or torch.Generator()
            self.generator.set_state(state["generator"])


class GridWorldVectorEnv(gym.vector.VectorEnv):
    """:class:`BatchedGridWorld` behind gymnasium's ``VectorEnv`` interface, so that CleanRL- and SB3-style loops
    can drive it: ``reset() -> (obs, info)``, ``step(actions) -> (obs, reward, terminated, truncated, info)``
    with same-step autoreset (``metadata["autoreset_mode"]`` is ``SAME_STEP``), ``info["final_obs"]`` /
    ``info["_final_obs"]`` where an episode ended, and episode statistics as gymnasium's
    ``RecordEpisodeStatistics`` writes them (``info["episode"] = {"r", "l", "t"}``, mask ``info["_episode"]``).

    ``array="numpy"`` (default) returns numpy arrays; ``array="torch"`` returns the twin's tensors unchanged.

    >>> envs = GridWorldVectorEnv("open9", [(0, 8)], num_envs=64, start=(4, 4), max_steps=20)
    >>> obs, info = envs.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        layout: str | Layout = "open9",
        goals: Sequence[Sequence[int]] | Sequence[int] = ((0, 8),),
        num_envs: int | None = None,
        start: Sequence[int] | None = (4, 4),
        max_steps: int = 40,
        array: str = "numpy",
        **kwargs,
    ):
        if array not in ("numpy", "torch"):
            raise GridError(f"array must be 'numpy' or 'torch', got {array!r}")
        self.twin = BatchedGridWorld(layout, goals, num_envs, start=start, max_steps=max_steps, **kwargs)
        self.num_envs = self.twin.num_envs
        self.array = array
        self.single_observation_space = gym.spaces.Discrete(self.twin.n_obs)
        self.single_action_space = gym.spaces.Discrete(self.twin.n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._ret = np.zeros(self.num_envs)
        self._len = np.zeros(self.num_envs, dtype=np.int64)
        self._zeros = np.zeros(self.num_envs)

    def _out(self, x: torch.Tensor):
        return x if self.array == "torch" else x.numpy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, _ = gym.utils.seeding.np_random(seed)
            self.action_space.seed(seed)
        obs = self.twin.reset(seed=seed)
        self._ret[:] = 0.0
        self._len[:] = 0
        return self._out(obs), {}

    def step(self, actions):
        if not torch.is_tensor(actions):
            actions = torch.from_numpy(np.asarray(actions, dtype=np.int64))
        obs, reward, terminated, truncated, final = self.twin.step(actions)
        r, te, tr = reward.numpy(), terminated.numpy(), truncated.numpy()  # CPU twin: no copies
        self._ret += r
        self._len += 1
        done = te | tr
        info: dict = {}
        if done.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            final_obs[done] = final.numpy()[done]
            mask = done if self.array == "numpy" else torch.from_numpy(done)
            info["final_obs"], info["_final_obs"] = final_obs, mask
            info["final_info"], info["_final_info"] = {}, mask
            stats = {
                "r": np.where(done, self._ret, 0.0),
                "l": np.where(done, self._len, 0),
                "t": self._zeros.copy(),
            }
            info["episode"] = (
                stats if self.array == "numpy" else {k: torch.from_numpy(v) for k, v in stats.items()}
            )
            info["_episode"] = mask
            self._ret[done] = 0.0
            self._len[done] = 0
        return self._out(obs), self._out(reward), self._out(terminated), self._out(truncated), info

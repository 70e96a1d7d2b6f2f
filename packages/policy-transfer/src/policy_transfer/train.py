"""The trainer: ``uv run --package policy-transfer train`` (see :mod:`policy_transfer.config` for what it runs)."""

from __future__ import annotations

from paperkit import Run, run_trainer

from .config import DESCRIPTION, PRESETS, Config

__all__ = ["DESCRIPTION", "PRESETS", "Config", "body", "main"]


def _grid(cfg: Config, run: Run) -> dict:
    from . import experiments as ex

    conds = list(cfg.conditions)
    pre = {}
    if any(c != "scratch" for c in conds):
        pre = run.phase("grid/pretrain", lambda: ex.grid_pretrain(cfg, run, conds))
    res = {}
    for cond in conds:
        if cond == "scratch":
            res[cond] = run.phase("grid/scratch", lambda: ex.grid_scratch(cfg, run))
        else:
            res[cond] = run.phase(f"grid/transfer/{cond}", lambda c=cond: ex.grid_transfer(cfg, run, c))
    return {"pretrain": pre, "transfer": res}


def grid_claims(cfg: Config, res: dict, run: Run) -> dict:
    import numpy as np
    from paperkit.claims import bootstrap_ci

    from .experiments import summarise_grid

    summary = summarise_grid(cfg, res)

    def near(c):
        return np.array(res[c]["steps"])[:, :-1].mean(1)

    def far(c):
        return np.array(res[c]["steps"])[:, -1]

    comparisons = {}
    kw = {"n": cfg.bootstrap, "seed": cfg.seed}
    if "distribution" in res and "scratch" in res:
        comparisons["near_steps_distribution_minus_scratch"] = bootstrap_ci(
            near("distribution"), near("scratch"), **kw
        )
        run.claim_difference(
            "near_transfer_beats_scratch",
            "open 9x9 GridWorld, near targets: target steps to 90% evaluation success (mean over targets), "
            "pretrained distribution minus scratch",
            method=near("distribution").tolist(),
            control=near("scratch").tolist(),
            control_name="scratch (no pretraining)",
            op="<",
            threshold=0.0,
            paired=False,
        )
    if "distribution" in res and "single" in res:
        comparisons["coverage_exact_distribution_minus_single"] = bootstrap_ci(
            res["distribution"]["coverage_exact"], res["single"]["coverage_exact"], **kw
        )
        comparisons["near_steps_distribution_minus_single"] = bootstrap_ci(
            near("distribution"), near("single"), **kw
        )
    for c in res:
        if c != "distribution" and "distribution" in res:
            comparisons[f"far_steps_distribution_minus_{c}"] = bootstrap_ci(far("distribution"), far(c), **kw)
        if c != "scratch" and "scratch" in res:
            comparisons[f"near_steps_{c}_minus_scratch"] = bootstrap_ci(near(c), near("scratch"), **kw)
            comparisons[f"far_steps_{c}_minus_scratch"] = bootstrap_ci(far(c), far("scratch"), **kw)
    return {"summary": summary, "comparisons": comparisons}


def _minigrid(cfg: Config, run: Run) -> dict:
    import numpy as np
    from paperkit.claims import bootstrap_ci

    from . import experiments as ex

    run.phase("minigrid/pretrain", lambda: ex.mg_pretrain(cfg, run))
    res = {
        "distribution": run.phase("minigrid/transfer", lambda: ex.mg_transfer(cfg, run, scratch=False)),
        "scratch": run.phase("minigrid/scratch", lambda: ex.mg_transfer(cfg, run, scratch=True)),
    }
    kw = {"n": cfg.bootstrap, "seed": cfg.seed}
    return {
        "runs": res,
        "steps": {c: bootstrap_ci(r["steps"], **kw) for c, r in res.items()},
        "reached": {c: float(np.mean(r["reached"])) for c, r in res.items()},
        "distribution_minus_scratch": bootstrap_ci(
            res["distribution"]["steps"], res["scratch"]["steps"], **kw
        ),
    }


def body(cfg: Config, run: Run) -> dict:
    from paperkit.device import seed_everything

    from .figures import (
        coverage_bars,
        grid_curves,
        minigrid_curves,
        ring_bars,
        ring_transfer,
        source_visits,
    )

    seed_everything(cfg.seed)
    results: dict = {"threads": cfg.threads}
    if "ring" in cfg.experiments:
        from .experiments import _loop, phase_seed
        from .ring import ring_claims, run_ring

        ring = run_ring(cfg, run, phase_seed, lambda desc: _loop(run, desc))
        tables = ring_claims(cfg, ring, run)
        results["ring"] = {
            "selection": ring["selection"],
            "lambda": ring["lambda"],
            "sigma": ring["sigma"],
            "ent_coef": ring["ent_coef"],
            "arms": tables["measures"],
            "transfer": tables["transfer"],
        }
        run.save_figure(ring_bars(results["ring"]["arms"], cfg), "ring_diversity")
        run.save_figure(ring_transfer(results["ring"]["transfer"], cfg.ring_ft_threshold), "ring_transfer")
    if "gridworld" in cfg.experiments:
        from .experiments import grid_tasks

        tasks = grid_tasks(cfg)
        grid = _grid(cfg, run)
        results["gridworld"] = {
            "near_targets": tasks["near"],
            "far_goal": tasks["far"],
            **grid_claims(cfg, grid["transfer"], run),
            "pretrain": {
                g: {k: v for k, v in p.items() if k != "success_curve"} for g, p in grid["pretrain"].items()
            },
        }
        run.save_figure(grid_curves(grid["transfer"], cfg.success_threshold), "gridworld_transfer")
        if any("source_visits" in r for r in grid["transfer"].values()):
            run.save_figure(
                source_visits(grid["transfer"], tasks["source"], tasks["start"]), "source_policies"
            )
        if any("coverage" in s for s in results["gridworld"]["summary"].values()):
            run.save_figure(coverage_bars(results["gridworld"]["summary"], cfg.select_k), "coverage")
    if "minigrid" in cfg.experiments:
        mg = _minigrid(cfg, run)
        results["minigrid"] = {k: v for k, v in mg.items() if k != "runs"}
        results["minigrid"]["zero_shot_success"] = mg["runs"]["distribution"].get("zero_shot_success")
        results["minigrid"]["heldout"] = mg["runs"]["distribution"].get("heldout")
        run.save_figure(minigrid_curves(mg["runs"], cfg.mg_return_threshold), "minigrid_transfer")
    return results


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="policy-transfer",
        config_cls=Config,
        presets=PRESETS,
        body=body,
        argv=argv,
        description=DESCRIPTION,
    )


if __name__ == "__main__":
    raise SystemExit(main())

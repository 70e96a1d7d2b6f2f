"""Claims over seeds: intervals, the bound decides, the control must fail; README tables rendered from summaries."""

import json
import math

import numpy as np
import pytest
from paperkit.claims import Claim, bootstrap_ci, format_table, interval, t_quantile
from paperkit.report import BEGIN, END, main, readme_mismatch, render_results, write_readme
from paperkit.testing import assert_readme_matches_summary

SEEDS5 = [0.71, 0.74, 0.69, 0.73, 0.72]


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 9, 19, 30, 100])
@pytest.mark.parametrize("p", [0.9, 0.95, 0.975, 0.995])
def test_t_quantile_matches_scipy(df, p):
    scipy_stats = pytest.importorskip("scipy.stats")
    assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-8, abs=1e-9)
    assert t_quantile(1 - p, df) == pytest.approx(-t_quantile(p, df))


def test_t_interval_closed_form():
    a = np.array(SEEDS5)
    iv = interval(a)
    half = t_quantile(0.975, 4) * a.std(ddof=1) / math.sqrt(5)
    assert iv["mean"] == pytest.approx(a.mean())
    assert (iv["lo"], iv["hi"]) == pytest.approx((a.mean() - half, a.mean() + half))


def test_interval_degenerate_inputs_never_decide():
    assert math.isnan(interval([0.5])["lo"])  # one seed: no interval
    assert math.isnan(interval([0.5, float("nan")])["lo"])
    with pytest.raises(ValueError, match="unknown interval method"):
        interval(SEEDS5, ci="wald")


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    iv = interval(SEEDS5, ci="bootstrap", seed=3)
    assert iv["lo"] <= iv["mean"] <= iv["hi"] and iv == interval(SEEDS5, ci="bootstrap", seed=3)
    d = bootstrap_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert d["mean"] == pytest.approx(1.0)


def test_method_equal_to_control_never_passes():
    for op in (">", ">=", "<", "<="):
        for ci in ("t", "bootstrap"):
            for paired in (True, False):
                c = Claim.difference(
                    "same",
                    "s",
                    method=SEEDS5,
                    control=SEEDS5,
                    control_name="itself",
                    op=op,
                    ci=ci,
                    paired=paired,
                )
                assert not c.passed, (op, ci, paired)
                assert c.value == 0.0


def test_threshold_that_favours_the_method_is_refused():
    with pytest.raises(ValueError, match="non-inferiority"):
        Claim.difference("x", "s", method=SEEDS5, control=SEEDS5, control_name="c", op=">", threshold=-1.0)
    with pytest.raises(ValueError, match="non-inferiority"):
        Claim.difference("x", "s", method=SEEDS5, control=SEEDS5, control_name="c", op="<", threshold=0.5)
    with pytest.raises(ValueError, match="one value per seed"):
        Claim.difference("x", "s", method=SEEDS5, control=SEEDS5[:3], control_name="c")


def test_difference_passes_on_the_bound_not_the_mean():
    control = np.array(SEEDS5)
    clear = Claim.difference("clear", "s", method=control + 0.05, control=control, control_name="base")
    assert clear.passed and clear.value == pytest.approx(0.05) and clear.interval[0] > 0
    # the mean is above 0 but the interval straddles 0: not a pass
    noisy = control + np.array([0.04, -0.03, 0.05, -0.02, 0.01])
    straddle = Claim.difference("straddle", "s", method=noisy, control=control, control_name="base")
    assert straddle.value > 0 and straddle.interval[0] < 0 < straddle.interval[1] and not straddle.passed
    # the same in the other direction
    lower = Claim.difference("lower", "s", method=control - 0.05, control=control, control_name="b", op="<")
    assert lower.passed and lower.interval[1] < 0


def test_over_seeds_needs_the_method_to_pass_and_the_control_to_fail():
    good, bad = [0.5, 0.7, 0.6, 0.4, 0.6], [2.4, 2.6, 2.2, 2.5, 2.3]
    c = Claim.over_seeds(
        "gap", "s", values=good, op="<=", threshold=2.0, control=bad, control_name="rho fixed"
    )
    assert c.passed and c.control["passed"] is False and c.seeds == 5
    # a control that passes too: the claim measures nothing
    both = Claim.over_seeds(
        "gap", "s", values=good, op="<=", threshold=2.0, control=good, control_name="same"
    )
    assert not both.passed and both.control["passed"] is True
    # the method's mean meets the threshold but its interval's bound does not
    wide = [0.5, 3.5, 0.2, 3.1, 0.4]
    assert np.mean(wide) <= 2.0
    assert not Claim.over_seeds(
        "gap", "s", values=wide, op="<=", threshold=2.0, control=bad, control_name="c"
    ).passed


def test_claim_records_serialise_with_old_fields_and_table():
    c = Claim.difference("d", "stmt", method=[1.0, 1.1, 1.2], control=[0.0, 0.1, 0.1], control_name="ctl")
    d = json.loads(json.dumps(c.to_dict()))
    assert {"id", "statement", "value", "op", "threshold", "passed"} <= set(d)
    assert d["seeds"] == 3 and d["control"]["name"] == "ctl" and len(d["interval"]) == 2
    table = format_table([c, Claim.check("x", "y", 1.0, ">", 0)])
    assert "ctl:" in table and "PASS" in table and "3 seeds" in table


def _package(tmp_path, claims):
    pkg = tmp_path / "pkg"
    (pkg / "docs").mkdir(parents=True)
    summary = {
        "package": "pkg",
        "preset": "default",
        "finished": "2026-11-30T12:00:00",
        "results": {"wall_seconds": 12.0},
        "claims": [c.to_dict() for c in claims],
        "provenance": {"cpu": "Test CPU", "gpu": None, "threads": {"torch": 1}, "git_commit": "abc123"},
    }
    (pkg / "docs" / "default-summary.json").write_text(json.dumps(summary))
    (pkg / "README.md").write_text(f"# pkg\n\ntext before\n\n{BEGIN}\nold\n{END}\n\ntext after\n")
    return pkg, summary


def test_readme_is_rendered_from_the_summary_and_checked(tmp_path, capsys):
    claim = Claim.difference(
        "d", "a | b", method=[1.0, 1.1, 1.2], control=[0.0, 0.1, 0.1], control_name="ctl"
    )
    pkg, summary = _package(tmp_path, [claim])
    assert readme_mismatch(pkg) is not None
    with pytest.raises(AssertionError, match="differs"):
        assert_readme_matches_summary(pkg)
    assert main(["--check", str(pkg)]) == 1
    write_readme(pkg)
    text = (pkg / "README.md").read_text()
    assert text.startswith("# pkg\n\ntext before") and text.endswith("text after\n") and "old" not in text
    assert "Test CPU" in text and "`d`" in text and "a \\| b" in text and "ctl:" in text and "PASS" in text
    assert_readme_matches_summary(pkg)
    assert main(["--check", str(pkg)]) == 0
    # the numbers drift: the check fails
    summary["claims"][0]["value"] = 9.0
    (pkg / "docs" / "default-summary.json").write_text(json.dumps(summary))
    assert readme_mismatch(pkg) is not None
    assert render_results(summary).count("\n") == 4


def test_report_errors_are_one_line(tmp_path, capsys):
    pkg, _ = _package(tmp_path, [])
    (pkg / "README.md").write_text("# no markers\n")
    assert main([str(pkg)]) == 2
    assert "needs exactly one" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2


def test_an_exact_claim_with_a_control_passes_only_when_the_control_fails():
    c = Claim.check("thin", "rank in the thinnest third", 3, "<=", 9, control=27, control_name="best covered")
    assert c.passed and c.control == {"name": "best covered", "value": 27.0, "passed": False, "exact": True}
    both = Claim.check("thin", "s", 3, "<=", 9, control=4, control_name="also thin")
    assert not both.passed and both.control["passed"]
    with pytest.raises(ValueError, match="control_name"):
        Claim.check("x", "s", 1, "<", 2, control=3)
    assert "exact" in render_results({"claims": [c.to_dict()]})

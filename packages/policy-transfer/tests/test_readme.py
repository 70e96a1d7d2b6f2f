"""The README's results block is docs/default-summary.json rendered (the real default run's claims)."""

from pathlib import Path

from paperkit.testing import assert_readme_matches_summary


def test_readme_results_match_the_default_summary():
    assert_readme_matches_summary(Path(__file__).parents[1])

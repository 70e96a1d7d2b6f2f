"""The README's results table is docs/default-summary.json rendered (python -m paperkit.report)."""

from pathlib import Path

from paperkit.testing import assert_readme_matches_summary


def test_readme_results_table_is_the_default_summary_rendered():
    assert_readme_matches_summary(Path(__file__).parents[1])

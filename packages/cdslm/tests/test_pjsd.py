import math
from collections import Counter

import pytest
from cdslm.pjsd import collapse, edit_distance, jsd_bits, ngram_counts, phoneme_error_rate, pjsd


def test_pjsd_is_zero_for_identical_and_one_for_disjoint_distributions():
    a = [[1, 2, 3, 2], [2, 1]]
    assert pjsd(a, a, eps=0.5) == pytest.approx(0.0, abs=1e-12)
    assert pjsd(a, [[5, 6], [7]], eps=0.0) == pytest.approx(1.0, abs=1e-12)
    assert pjsd(a, [[5, 6], [7]], n=2, eps=0.0) == pytest.approx(1.0, abs=1e-12)


def test_jsd_matches_its_closed_form_and_is_symmetric():
    p, q = Counter({"a": 3, "b": 1}), Counter({"a": 1, "b": 1})
    pa, pb, qa, qb = 0.75, 0.25, 0.5, 0.5
    ma, mb = (pa + qa) / 2, (pb + qb) / 2
    want = 0.5 * (pa * math.log2(pa / ma) + pb * math.log2(pb / mb)) + 0.5 * (
        qa * math.log2(qa / ma) + qb * math.log2(qb / mb)
    )
    assert jsd_bits(p, q) == pytest.approx(want, rel=1e-12)
    assert jsd_bits(q, p) == pytest.approx(want, rel=1e-12)
    assert 0 < jsd_bits(p, q, eps=1.0) < want  # smoothing pulls the two together


def test_ngram_counts_and_collapse():
    assert ngram_counts([[1, 2, 1]], 2) == Counter({(1, 2): 1, (2, 1): 1})
    assert ngram_counts([[1]], 2) == Counter()
    # runs merge, short runs and silence (0) drop, and a phoneme repeated across a dropped run stays one
    assert collapse([0, 0, 3, 3, 3, 4, 3, 3, 0, 5, 5, 5], min_run=2) == [3, 5]
    assert collapse([1, 1, 2, 2, 1, 1], min_run=2) == [1, 2, 1]
    assert collapse([], 2) == []


def test_edit_distance_and_per():
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [1, 2]) == 2
    assert phoneme_error_rate([[1, 2], [3]], [[1, 2], [4]]) == pytest.approx(1 / 3)

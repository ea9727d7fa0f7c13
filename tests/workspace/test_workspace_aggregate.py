"""Agreement and aggregation on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatrlhf.aggregate import (agreement, aggregate, bradley_terry, preference_matrix, ranked_pairs,
                                scores_to_ranks)


def test_agreement_hand_computed():
    # Task t1 (3 items, 3 pairs): a = 0<1<2, b = 0<2<1, c = 0<1=2.
    #   a~b agree on (0,1),(0,2), not (1,2) -> 2/3; a~c: (1,2) strict vs tie -> 2/3; b~c -> 2/3.
    # Task t2 (2 items): a and d both say 1 over 0 -> 1/1.
    tasks = {"t1": {"a": [0, 1, 2], "b": [0, 2, 1], "c": [0, 1, 1]},
             "t2": {"a": [1, 0], "d": [1, 0]},
             "t3": {"e": [0, 1]}}  # one annotator alone contributes nothing
    ag = agreement(tasks)
    assert ag.pairs == 10
    assert ag.overall == pytest.approx(7 / 10)
    assert ag.per_annotator["a"] == pytest.approx((2 + 2 + 1) / 7)
    assert ag.per_annotator["b"] == pytest.approx(4 / 6)
    assert ag.per_annotator["d"] == 1.0
    assert "e" not in ag.per_annotator
    assert agreement({"t": {"x": [0, 1]}}).overall is None


def test_agreement_both_tie_counts_as_agreement():
    ag = agreement({"t": {"a": [0, 0, 1], "b": [0, 0, 1]}})
    assert ag.overall == 1.0


def test_preference_matrix():
    p = preference_matrix([[0, 1, 1], [2, 0, 1]])
    assert p.tolist() == [[0, 1, 1], [1, 0, 1], [1, 0, 0]]


def test_ranked_pairs_tennessee():
    # The textbook Tennessee capital election: 42% Memphis > Nashville > Chattanooga > Knoxville,
    # 26% N > C > K > M, 15% C > K > N > M, 17% K > C > N > M. Tideman: N > C > K > M.
    m, n, c, k = [0, 1, 2, 3], [3, 0, 1, 2], [3, 2, 0, 1], [3, 2, 1, 0]
    votes = [m] * 42 + [n] * 26 + [c] * 15 + [k] * 17
    assert ranked_pairs(votes) == [3, 0, 1, 2]


def test_ranked_pairs_breaks_a_cycle_at_its_weakest_link():
    # 4 voters A>B>C, 3 voters B>C>A, 2 voters C>A>B: a Condorcet cycle.
    # A>B 6-3 (margin 3), B>C 7-2 (margin 5), C>A 5-4 (margin 1): lock B>C, then A>B, and skip C>A.
    abc, bca, cab = [0, 1, 2], [2, 0, 1], [1, 2, 0]
    votes = [abc] * 4 + [bca] * 3 + [cab] * 2
    p = preference_matrix(votes)
    assert (p[0, 1], p[1, 0], p[1, 2], p[2, 1], p[2, 0], p[0, 2]) == (6, 3, 7, 2, 5, 4)
    assert ranked_pairs(votes) == [0, 1, 2]
    # With 2 A>B>C, 3 B>C>A, 4 C>A>B: A>B 6-3, B>C 5-4, C>A 7-2 -> lock C>A, A>B, skip B>C: C, A, B.
    votes = [abc] * 2 + [bca] * 3 + [cab] * 4
    assert ranked_pairs(votes) == [1, 2, 0]


def test_ranked_pairs_ties_stay_ties():
    assert ranked_pairs([[0, 0, 1]]) == [0, 0, 1]
    assert ranked_pairs([[0, 1], [1, 0]]) == [0, 0]


def test_bradley_terry_two_items_mle():
    # i beats j 3 times out of 4: the MLE strength ratio is exactly 3.
    s = bradley_terry([[0, 1]] * 3 + [[1, 0]])
    assert math.exp(s[0] - s[1]) == pytest.approx(3.0, rel=1e-6)
    assert s.sum() == pytest.approx(0.0, abs=1e-9)


def test_bradley_terry_ties_are_half_wins():
    # One win for 0 and one tie: W_0 = 1.5, W_1 = 0.5 over n = 2 -> ratio 3.
    s = bradley_terry([[0, 1], [0, 0]])
    assert math.exp(s[0] - s[1]) == pytest.approx(3.0, rel=1e-6)


def test_bradley_terry_three_items_hand_solved():
    # Scores fixed point: with 0>1, 1>2, 0>2 each once plus prior 1 tied pair each, order is 0,1,2
    # and by symmetry s0 = -s2, s1 = 0.
    s = bradley_terry([[0, 1, 2]], prior=1.0)
    assert s[1] == pytest.approx(0.0, abs=1e-8) and s[0] == pytest.approx(-s[2])
    assert s[0] > 0
    assert aggregate([[0, 1, 2], [0, 2, 1], [0, 1, 2]], "bradley_terry") == [0, 1, 2]


def test_aggregate_methods_agree_on_a_clear_case_and_tie_symmetric_ones():
    votes = [[0, 1, 2, 3], [0, 2, 1, 3], [1, 0, 2, 3]]
    assert aggregate(votes, "ranked_pairs") == [0, 1, 2, 3]
    assert aggregate(votes, "bradley_terry") == [0, 1, 2, 3]
    assert aggregate([[0, 1], [1, 0]], "bradley_terry") == [0, 0]
    with pytest.raises(ValueError):
        aggregate(votes, "borda")
    with pytest.raises(ValueError):
        aggregate([[0, 1], [0, 1, 2]])


def test_scores_to_ranks():
    assert scores_to_ranks([0.5, 2.0, 0.5, -1.0]) == [1, 0, 1, 2]
    assert scores_to_ranks(np.array([1.0, 1.0 + 1e-9]).tolist()) == [0, 0]

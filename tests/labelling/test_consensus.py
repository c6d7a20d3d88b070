"""Ranked pairs and agreement: properties over random rankings, plus worked examples."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.labelling.consensus import agreement, ranked_pairs


@st.composite
def ballots(draw, min_candidates=2, max_candidates=5):
    candidates = draw(st.lists(st.integers(1, 10_000), min_size=min_candidates, max_size=max_candidates,
                               unique=True))
    rankings = draw(st.lists(st.permutations(candidates), min_size=1, max_size=9))
    return candidates, [list(r) for r in rankings]


def condorcet_winner(candidates, rankings):
    for c in candidates:
        if all(
            sum(r.index(c) < r.index(o) for r in rankings) > sum(r.index(o) < r.index(c) for r in rankings)
            for o in candidates if o != c
        ):
            return c
    return None


@given(ballots())
def test_result_is_a_permutation_of_the_candidates(ballot):
    candidates, rankings = ballot
    assert sorted(ranked_pairs(candidates, rankings)) == sorted(candidates)


@given(ballots())
def test_condorcet_winner_comes_first(ballot):
    candidates, rankings = ballot
    winner = condorcet_winner(candidates, rankings)
    if winner is not None:
        assert ranked_pairs(candidates, rankings)[0] == winner


@given(st.lists(st.integers(), min_size=1, max_size=7, unique=True), st.integers(1, 6))
def test_unanimous_ranking_comes_back_unchanged(order, voters):
    assert ranked_pairs(order, [order] * voters) == order


@given(ballots(), st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(ballot, rnd):
    candidates, rankings = ballot
    shuffled = rankings[:]
    rnd.shuffle(shuffled)
    assert ranked_pairs(candidates, rankings) == ranked_pairs(list(reversed(candidates)), shuffled)


def test_condorcet_cycle_is_broken_by_the_weakest_majority():
    # a>b 7:2, b>c 6:3, c>a 5:4: the weakest majority (c>a) is the one dropped, so a, b, c.
    rankings = [[1, 2, 3]] * 4 + [[2, 3, 1]] * 2 + [[3, 1, 2]] * 3
    assert ranked_pairs([1, 2, 3], rankings) == [1, 2, 3]


def test_a_perfect_tie_falls_back_to_borda_then_the_smaller_id():
    assert ranked_pairs([5, 9], [[9, 5], [5, 9]]) == [5, 9]
    assert ranked_pairs([1, 2, 3], [[3, 1, 2], [3, 2, 1]]) == [3, 1, 2]


def test_ids_missing_from_the_candidates_are_ignored():
    assert ranked_pairs([1, 2], [[3, 2, 1], [2, 1]]) == [2, 1]


def test_agreement_is_kendall_tau_rescaled():
    assert agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert agreement([3, 2, 1], [1, 2, 3]) == 0.0
    # One swapped pair out of three: tau = 1/3, agreement = 2/3.
    assert abs(agreement([2, 1, 3], [1, 2, 3]) - 2 / 3) < 1e-9
    assert agreement([1], [1, 2]) is None

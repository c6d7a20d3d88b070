"""Ranking consensus (Tideman's ranked pairs) and agreement (Kendall tau rescaled to [0, 1]).

Deterministic tie-breaking, independent of the order in which rankings arrive:

* Majorities are locked strongest first: more winning votes first, then the larger margin, then
  the pair whose (winner id, loser id) is smaller. Only equal-strength pairs that would close a
  cycle depend on the last rule.
* Pairs with no majority (a tie) lock nothing. The final order takes, at each step, among the
  candidates that no remaining candidate beats through a locked pair, the one with the highest
  Borda score (total number of candidates placed below it across all rankings), then the smaller id.

A Condorcet winner is never beaten by a locked pair, and all its wins lock (no cycle can go through
a candidate that loses to nobody), so it always comes first; a unanimous ranking comes back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations


def _clean(ranking: Sequence[int], candidates: set[int]) -> list[int]:
    seen: set[int] = set()
    order = []
    for item in ranking:
        if item in candidates and item not in seen:
            seen.add(item)
            order.append(item)
    return order


def ranked_pairs(candidates: Iterable[int], rankings: Iterable[Sequence[int]]) -> list[int]:
    """The consensus order of ``candidates``, best first. Unknown ids in rankings are ignored;
    a candidate missing from a ranking takes part only in the pairs that ranking orders."""
    pool = sorted(set(candidates))
    members = set(pool)
    wins: dict[tuple[int, int], int] = {}
    borda = dict.fromkeys(pool, 0)
    for ranking in rankings:
        order = _clean(ranking, members)
        for position, winner in enumerate(order):
            borda[winner] += len(order) - 1 - position
            for loser in order[position + 1 :]:
                wins[winner, loser] = wins.get((winner, loser), 0) + 1

    majorities = []
    for a, b in combinations(pool, 2):
        ab, ba = wins.get((a, b), 0), wins.get((b, a), 0)
        if ab != ba:
            winner, loser, strength, margin = (a, b, ab, ab - ba) if ab > ba else (b, a, ba, ba - ab)
            majorities.append((-strength, -margin, winner, loser))
    majorities.sort()

    beats: dict[int, set[int]] = {c: set() for c in pool}

    def reaches(start: int, goal: int) -> bool:
        stack, seen = [start], {start}
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            for nxt in beats[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    for _strength, _margin, winner, loser in majorities:
        if not reaches(loser, winner):
            beats[winner].add(loser)

    remaining = set(pool)
    result = []
    while remaining:
        beaten = {loser for c in remaining for loser in beats[c]}
        sources = [c for c in remaining if c not in beaten]
        best = min(sources, key=lambda c: (-borda[c], c))
        result.append(best)
        remaining.remove(best)
    return result


def agreement(ranking: Sequence[int], consensus: Sequence[int]) -> float | None:
    """(1 + Kendall tau) / 2 between a ranking and the consensus over the ids both contain;
    1 = same order, 0 = reversed, None when fewer than two ids are shared."""
    position = {item: index for index, item in enumerate(consensus)}
    items = _clean(ranking, set(position))
    pairs = len(items) * (len(items) - 1) // 2
    if pairs == 0:
        return None
    concordant = sum(1 for a, b in combinations(items, 2) if position[a] < position[b])
    tau = (2 * concordant - pairs) / pairs
    return (1 + tau) / 2


def leave_one_out_agreements(candidates: Sequence[int], rankings: Sequence[Sequence[int]],
                             min_others: int = 2) -> list[float | None]:
    """Each ranking's agreement with the consensus of the *other* rankings of the same set. A ranking
    counted inside its own consensus agrees with itself, which flatters everyone and a troll most;
    with fewer than ``min_others`` other rankings there is no fair measure, so None."""
    results: list[float | None] = []
    for index, ranking in enumerate(rankings):
        others = [r for i, r in enumerate(rankings) if i != index]
        if len(others) < min_others:
            results.append(None)
            continue
        results.append(agreement(ranking, ranked_pairs(candidates, others)))
    return results

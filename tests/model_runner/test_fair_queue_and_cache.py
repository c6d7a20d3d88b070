from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from model_runner.fair_queue import FairQueue
from model_runner.state_cache import StateCache


def drain(q: FairQueue) -> list:
    out = []
    while (item := q.pop_nowait()) is not None:
        out.append(item)
    return out


def test_burst_then_late_user():
    q: FairQueue[str] = FairQueue()
    for i in range(5):
        q.put(f"a{i}", "A")
    assert q.pop_nowait() == "a0"  # being served
    q.put("b0", "B")
    assert drain(q) == ["b0", "a1", "a2", "a3", "a4"]


def test_late_user_before_anything_was_served():
    q: FairQueue[str] = FairQueue()
    for i in range(3):
        q.put(f"a{i}", "A")
    q.put("b0", "B")
    assert drain(q) == ["a0", "b0", "a1", "a2"]


def test_positions_are_published_on_every_change():
    seen: list[list[str]] = []
    q: FairQueue[str] = FairQueue(on_positions=seen.append)
    assert q.put("a0", "A") == 1
    assert q.put("a1", "A") == 2
    assert q.put("b0", "B") == 2  # B goes ahead of A's second request
    assert seen[-1] == ["a0", "b0", "a1"]
    assert q.remove("b0") and seen[-1] == ["a0", "a1"]
    assert not q.remove("b0")
    q.pop_nowait()
    assert seen[-1] == ["a1"]


def test_newcomer_joins_the_current_round():
    q: FairQueue[str] = FairQueue()
    for i in range(4):
        q.put(f"a{i}", "A")
    for _ in range(3):
        q.pop_nowait()
    q.put("b0", "B")  # B was never served: it joins the round being served now
    q.put("a4", "A")
    assert drain(q) == ["b0", "a3", "a4"]


@given(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=60))
def test_round_robin_when_everything_is_queued_up_front(users):
    q: FairQueue[tuple[str, int]] = FairQueue()
    for i, u in enumerate(users):
        q.put((u, i), u)
    order = drain(q)
    assert sorted(order) == sorted((u, i) for i, u in enumerate(users))
    # Each user's requests keep their order.
    for u in set(users):
        mine = [i for uu, i in order if uu == u]
        assert mine == sorted(mine)
    # While two users both still wait, their served counts never differ by more than one.
    remaining = Counter(users)
    served: Counter[str] = Counter()
    for u, _ in order:
        served[u] += 1
        remaining[u] -= 1
        waiting = [v for v in remaining if remaining[v] > 0]
        for v in waiting:
            for w in waiting:
                assert abs(served[v] - served[w]) <= 1


def test_state_cache_lru_by_bytes():
    c = StateCache(capacity_bytes=1000)
    assert c.put("a", [1, 2], bytes(400))
    assert c.put("b", [1], bytes(400))
    assert c.nbytes == 400 + 16 + 400 + 8
    assert c.take("a") is not None  # using a makes it... gone (it lives in the model again)
    assert c.put("a", [1, 2], bytes(400))  # now b is the oldest
    assert c.put("c", [], bytes(300))
    assert "b" not in c and c.keys() == ["a", "c"]
    assert c.evictions == 1
    assert c.nbytes <= c.capacity_bytes


def test_state_cache_refuses_an_oversized_entry_and_replaces_same_key():
    c = StateCache(capacity_bytes=100)
    assert not c.put("big", [], bytes(101))
    assert len(c) == 0
    assert c.put("k", [1], bytes(50))
    assert c.put("k", [1, 2, 3], bytes(60))
    assert len(c) == 1 and c.nbytes == 60 + 24
    assert c.take("k").tokens == (1, 2, 3)
    assert c.nbytes == 0 and c.take("k") is None

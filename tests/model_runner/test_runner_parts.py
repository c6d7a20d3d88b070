"""The runner's parts without a model: the decode schedule, the stop-string buffer, state buffers."""

from __future__ import annotations

from dataclasses import dataclass, field

from model_runner.scheduler import PREFILL_WHILE_GENERATING, plan_step
from model_runner.sequences import common_prefix_len, state_buffer
from model_runner.text_buffer import StopTextBuffer


@dataclass(eq=False)
class Job:
    pending: list[int] = field(default_factory=list)
    n_generated: int = 0


def test_prompts_arriving_together_are_read_in_one_step():
    jobs = [Job(pending=[0] * n) for n in (40, 45, 38, 50)]
    work, decoding = plan_step(jobs, n_batch=512, decoded_last=False)
    assert not decoding
    # Everyone advances by what the shortest still needs: it finishes now, the others next time.
    assert [(j.pending.__len__(), n) for j, n in work] == [(38, 38), (40, 38), (45, 38), (50, 38)]


def test_long_prompts_share_the_batch_equally():
    jobs = [Job(pending=[0] * 1500) for _ in range(8)]
    work, _ = plan_step(jobs, n_batch=512, decoded_last=False)
    assert [n for _, n in work] == [64] * 8


def test_generation_and_reading_alternate_and_never_mix():
    generating = [Job(pending=[1], n_generated=5) for _ in range(3)]
    newcomer = Job(pending=[0] * 1000)
    jobs = [*generating, newcomer]
    work, decoding = plan_step(jobs, n_batch=512, decoded_last=False)
    assert decoding and [j for j, _ in work] == generating and {n for _, n in work} == {1}
    work, decoding = plan_step(jobs, n_batch=512, decoded_last=True)
    assert not decoding and work == [(newcomer, PREFILL_WHILE_GENERATING)]


def test_more_readers_than_the_batch_holds():
    jobs = [Job(pending=[0] * 3) for _ in range(10)]
    work, _ = plan_step(jobs, n_batch=4, decoded_last=False)
    assert [n for _, n in work] == [1] * 4


def test_stop_strings_are_held_back_until_decided():
    buffer = StopTextBuffer(("<|im_end|>",))
    assert buffer.feed(b"Hello <|im") == ("Hello ", False)
    assert buffer.feed(b"_e") == ("", False)
    assert buffer.feed(b"nd|> more") == ("", True)
    assert buffer.text == "Hello "


def test_a_false_alarm_is_released_and_characters_span_tokens():
    buffer = StopTextBuffer(("STOP",))
    assert buffer.feed(b"ST") == ("", False)
    assert buffer.feed(b"ay \xc3") == ("STay ", False)
    assert buffer.feed(b"\xa9") == ("é", False)
    assert buffer.feed(b" S") == (" ", False)
    assert buffer.finish() == ("S", False)
    assert buffer.text == "STay é S"


def test_no_stops_and_an_unfinished_character_at_the_end():
    buffer = StopTextBuffer(())
    assert buffer.feed(b"ab\xe2\x82") == ("ab", False)
    assert buffer.finish() == ("\ufffd", False)


def test_state_buffers_are_zeroed_mappings():
    blob = state_buffer(1 << 20)
    assert len(blob) == 1 << 20 and blob[0] == 0 and blob[-1] == 0
    blob[5] = 7
    assert bytes(blob[4:6]) == b"\x00\x07"
    assert common_prefix_len([1, 2, 3], [1, 2, 4, 5]) == 2

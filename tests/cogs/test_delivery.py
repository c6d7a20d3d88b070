"""cogs/delivery.py: a Discord call retried through transient failures until its deadline, 4xx at once;
and through the emulator, a message sent through an outage (or whose answer was lost) arrives once."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from types import SimpleNamespace

import aiohttp
import discord
import pytest

from cogs import delivery
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from emulator.testing import run_client

SEND = "POST /channels/{channel_id}/messages"
FAST = {"first_pause": 0.01, "max_pause": 0.05}


def http_error(status: int, kind: type[discord.HTTPException] = discord.HTTPException) -> discord.HTTPException:
    return kind(SimpleNamespace(status=status, reason="test"), {"message": f"{status}", "code": 0})


def failing(*errors: BaseException, result: str = "sent"):
    """A call that raises each error in turn, then returns ``result``; ``calls`` counts the attempts."""
    queue = list(errors)

    async def call() -> str:
        call.calls += 1
        if queue:
            raise queue.pop(0)
        return result

    call.calls = 0
    return call


def soon(seconds: float = 30.0):
    return discord.utils.utcnow() + timedelta(seconds=seconds)


async def test_transient_failures_are_retried_until_the_call_succeeds(caplog):
    call = failing(http_error(503, discord.DiscordServerError), http_error(429),
                   aiohttp.ServerDisconnectedError(), TimeoutError(), http_error(502, discord.DiscordServerError))
    with caplog.at_level(logging.INFO, logger="cogs.delivery"):
        assert await delivery.deliver(call, until=soon(), what="send a test message", **FAST) == "sent"
    assert call.calls == 6
    assert any("could not send a test message" in r.getMessage() for r in caplog.records)
    assert any("succeeded after 5 failed attempts" in r.getMessage() for r in caplog.records)


async def test_the_deadline_ends_the_retries_with_one_log_line(caplog):
    call = failing(*[http_error(500, discord.DiscordServerError)] * 1000)
    with caplog.at_level(logging.WARNING, logger="cogs.delivery"), pytest.raises(delivery.Undelivered) as raised:
        await delivery.deliver(call, until=soon(0.3), what="send a test message", **FAST)
    assert 1 < call.calls < 1000
    assert raised.value.attempts == call.calls and raised.value.error.status == 500
    gave_up = [r for r in caplog.records if "gave up send a test message" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.WARNING


@pytest.mark.parametrize("error", [http_error(400), http_error(401), http_error(403, discord.Forbidden),
                                   http_error(404, discord.NotFound), ValueError("a bug of ours")])
async def test_client_errors_are_raised_at_once(error):
    call = failing(error)
    with pytest.raises(type(error)):
        await delivery.deliver(call, until=soon(), what="send a test message", **FAST)
    assert call.calls == 1


async def test_each_attempt_gets_the_files_whole():
    data = b"x" * 10_000
    fresh = delivery.replayable({"content": "here", "file": discord.File(io.BytesIO(data), "a.txt"),
                                 "attachments": [discord.File(io.BytesIO(data[:5]), "b.txt")]})
    for _ in range(2):
        message = fresh()
        assert message["content"] == "here" and message["file"].fp.read() == data
        assert message["attachments"][0].fp.read() == data[:5] and message["attachments"][0].filename == "b.txt"


@pytest.fixture
async def channel(emulator):  # noqa: F811
    guild = await emulator.create_guild("Delivery")
    intents = discord.Intents.none()
    intents.guilds = True
    async with run_client(discord.Client(intents=intents), emulator) as client:
        yield client.get_partial_messageable(guild.channel("general").id), guild.channel("general")


async def test_a_message_sent_through_an_outage_arrives_once(emulator, channel):  # noqa: F811
    partial, general = channel
    emulator.faults.fail(SEND, 503, seconds=1.5)  # discord.py gives up on a 503 at once
    fresh = delivery.replayable({"file": discord.File(io.BytesIO(b"whole file"), "note.txt")})
    key = delivery.nonce()
    sent = await delivery.deliver(lambda: partial.send("after the outage", nonce=key, **fresh()), until=soon(),
                                  what="send a test message", **FAST)
    statuses = [call.status for call in emulator.calls_to(SEND)]
    assert statuses[-1] == 200 and set(statuses[:-1]) == {503} and len(statuses) > 2
    shown = emulator.bot_messages(general)
    assert [m.id for m in shown] == [sent.id] and shown[0].content == "after the outage"
    assert shown[0].attachments[0].data == b"whole file"


async def test_a_lost_answer_does_not_post_twice(emulator, channel):  # noqa: F811
    partial, general = channel
    # Discord posts the message, but the answer is lost (twice): the retries carry the same nonce.
    emulator.faults.fail(SEND, 503, times=2, handled=True)
    key = delivery.nonce()
    sent = await delivery.deliver(lambda: partial.send("posted once", nonce=key), until=soon(),
                                  what="send a test message", **FAST)
    assert [call.status for call in emulator.calls_to(SEND)] == [503, 503, 200]
    assert [m.id for m in emulator.bot_messages(general)] == [sent.id]

"""The emulator refuses chosen REST routes for a minute, some with 5xx (500, 502, 503), others with 429,
while members submit prompts and reviews through /task, a moderator runs /admin commands, members DM the
chat and a task post falls due. Then Discord recovers: the bot is still up and logged no error, every
member sees their answer exactly once, every submission is stored once, the chat answers arrived and the
post went out once. Every interaction is deferred (QUICK_SECONDS = 0), so every answer goes through the
interaction webhooks, which are down.

Also: the first answer to an interaction refused past Discord's 3 s (nobody can answer it; the work is
recorded, and sending it again stores nothing twice), and a task post whose send and seeds meet faults.

FAULTS_OUTAGE_SECONDS sets the outage (default 60)."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from cogs import delivery
from cogs.labelling import answering
from emulator.core import EmulatorTimeout
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from model_runner import bundled_smollm2_path
from storage.enums import ChatRole
from storage.models import BotPost, ChatMessage
from tests.cogs.labelling.posts.conftest import COGS, FLOW
from tests.cogs.labelling.posts.test_reaction_replay import accepted_prompt
from tests.cogs.labelling.tasks.conftest import Clicker, component, ids, select_for
from tests.faults.fault_harness import duplicated_texts

OUTAGE = float(os.environ.get("FAULTS_OUTAGE_SECONDS", "60"))
# Long enough for the last retry after the outage: the delivery layer's longest pause (15 s) plus
# discord.py's own retries of a 500 (about 25 s), with room for a loaded machine.
RECOVERY = 240.0
CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
EDIT_ORIGINAL = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
SEND = "POST /channels/{channel_id}/messages"
EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
SEED = "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"
SERVER_ERRORS = {EDIT_ORIGINAL: 503, FOLLOWUP: 502, SEND: 500}
RATE_LIMITED = (EDIT,)
TO_REVIEW = "How do bees find their way back to the hive?"
TO_ANSWER = "Why does ice float on water?"
COPIED = "What is the oldest tree alive today?"
RECORDED = "Thank you, recorded!"


def settings_for(tmp_path, *, chat: bool = True) -> Settings:
    model = bundled_smollm2_path() if chat else None
    chat_settings = ({"model_path": str(model), "threads": 1, "context_size": 1024, "max_reply_tokens": 4, "seed": 1}
                     if model else {"enabled": False})
    return Settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
                    discord={"cogs": [*COGS, "cogs.chat"] if model else COGS},
                    chat=chat_settings, labelling={**FLOW, "p_full_labeling_review_prompt": 0.0},
                    posts={"first_post_delay_seconds": 3})


def title(message) -> str:
    return message.embeds[0].get("title", "") if message.embeds else ""


async def prompt_to_review(labelling, text: str) -> None:
    """A prompt written through the engine by someone not on the server, waiting for its reviews."""
    author = await labelling.get_or_create_user(900_010)
    offer = await labelling.request_task(author.id, kinds="initial_prompt")
    await labelling.submit_initial_prompt(offer.task_id, author.id, text)


async def review_ready_to_confirm(clicker: Clicker):
    """/task review, every question answered: the message whose Confirm is left to click."""
    message = await clicker.task("review")
    while True:
        for arg in [cid.rsplit(":", 1)[1] for cid in ids(message, "lt:s:label:")]:
            cid = select_for(message, "label", arg)
            options = [o["label"] for o in component(message, cid)["options"]]
            await clicker.pick(message, cid, ["0" if options == ["Yes", "No"] else "3"])
        more = [cid for cid in ids(message, "lt:b:page:") if component(message, cid)["label"].startswith("More")]
        if not more:
            return message
        await clicker.click(message, more[0])


def errors_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_minute_of_5xx_and_429_loses_no_reply(emulator, start_bot, tmp_path, caplog, monkeypatch):  # noqa: F811
    monkeypatch.setattr(answering, "QUICK_SECONDS", 0)
    emu = emulator
    loop = asyncio.get_running_loop()
    guild = await emu.create_guild("Outage", channels=["general", "reviews", "replies"])
    general, reviews, replies = (guild.channel(name) for name in ("general", "reviews", "replies"))
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    writers = [await emu.create_user(f"writer{i}", guild=guild) for i in range(4)]
    copier = await emu.create_user("copier", guild=guild)  # sends a text that is already stored
    reviewers = [await emu.create_user(f"reviewer{i}", guild=guild) for i in range(2)]
    asker = await emu.create_user("asker", guild=guild)  # /settings show
    settings = settings_for(tmp_path)
    async with start_bot(settings) as bot:
        chatters = [await emu.create_user(f"chatter{i}", guild=guild) for i in range(2)] if bot.get_cog("Chat") else []
        labelling = bot.services.labelling
        await accepted_prompt(labelling, TO_ANSWER)
        await prompt_to_review(labelling, TO_REVIEW)
        # Before the outage: a review post in #reviews, and the members' task messages.
        await (await mod.slash("admin channel set", {"channel": reviews, "kinds": "review"},
                               channel=general)).wait_message()
        review_post = await emu.wait_for_message(reviews, lambda m: bool(m.embeds), timeout=60)
        # The reviewers take their tasks first: TO_REVIEW is then the only prompt waiting for reviews.
        ready = {user: await review_ready_to_confirm(Clicker(emu, user)) for user in reviewers}
        await Clicker(emu, copier).write(await Clicker(emu, copier).task("prompt"), COPIED)
        tasks = {user: await Clicker(emu, user).task("prompt") for user in [*writers, copier]}

        # ----- the outage ---------------------------------------------------------------------------
        opened_at = loop.time()
        for route, status in SERVER_ERRORS.items():
            emu.faults.fail(route, status, seconds=OUTAGE)
        for route in RATE_LIMITED:
            emu.faults.rate_limit(route, 1.0, seconds=OUTAGE)
        # Short faults on the first answers, which discord.py absorbs within Discord's 3 s.
        emu.faults.fail(CALLBACK, 500, times=1)
        emu.faults.rate_limit(CALLBACK, 0.5, times=1)

        texts = {user: f"Outage prompt by {user.username}: what makes the sea salty?" for user in writers}
        texts[copier] = COPIED  # the copier sent it already: refused, and given back in a follow-up

        async def write(user):
            opened = await user.click(tasks[user], ids(tasks[user], "lt:b:write:")[0])
            await opened.wait_modal()
            submitted = await opened.submit_modal({"lt:text": texts[user]})
            await submitted.wait_response(timeout=10)
            return submitted

        async def confirm(user):
            clicked = await user.click(ready[user], ids(ready[user], "lt:b:confirm:")[0])
            await clicked.wait_response(timeout=10)
            return clicked

        submissions = await asyncio.gather(*(write(user) for user in [*writers, copier]))
        confirmations = await asyncio.gather(*(confirm(user) for user in reviewers))
        shown_settings = await asker.slash("settings show", {})
        channel_set = await mod.slash("admin channel set", {"channel": replies, "kinds": "reply"}, channel=general)
        stats = await mod.slash("admin stats", {}, channel=general)
        asked = {user: await user.dm(f"Say hello to number {i}.") for i, user in enumerate(chatters)}
        # The first answers went through (after the short faults), the rest waits for Discord.
        for interaction in [*submissions, *confirmations, shown_settings, stats]:
            assert (await interaction.wait_response(timeout=10)).deferred
        assert "Task channel set" in (await channel_set.wait_message(timeout=10)).content
        await asyncio.sleep(max(0.0, opened_at + OUTAGE - loop.time()))

        # ----- Discord is back ----------------------------------------------------------------------
        def answers_shown() -> dict[str, bool]:
            shown = {f"recorded {s.user.username}": title(tasks[s.user]) == RECORDED for s in submissions[:-1]}
            shown["copier's text given back"] = bool(submissions[-1].followups)
            shown.update({f"review {c.user.username}": title(ready[c.user]) == RECORDED for c in confirmations})
            shown["settings"] = bool(shown_settings.original and not shown_settings.original.loading)
            shown["stats"] = bool(stats.original and not stats.original.loading)
            shown["review post closed"] = not review_post.components
            shown["reply post"] = bool(emu.bot_messages(replies))
            for user, message in asked.items():
                shown[f"chat {user.username}"] = any(
                    m.components or "*Sorry," in m.content for m in emu.bot_messages(user) if m.id > message.id)
            return shown

        missing_at_recovery = [what for what, done in answers_shown().items() if not done]
        recovered_at = loop.time()
        try:
            await emu.wait_for(lambda: all(answers_shown().values()), timeout=RECOVERY)
        except EmulatorTimeout:
            pytest.fail(f"answers missing after the outage: {[w for w, done in answers_shown().items() if not done]}")
        caught_up = loop.time() - recovered_at
        await bot.get_cog("Posts").wait_for_edits()

        # No crash, no error: the bot is connected and answers as before.
        assert emu.gateway.connected and not bot.is_closed()
        assert errors_logged(caplog) == []
        assert emu.internal_errors == [] and emu.unknown_routes == []
        refused = Counter((call.route, call.status) for call in emu.calls if call.status == 429 or call.status >= 500)
        for route, status in SERVER_ERRORS.items():
            assert refused[route, status] > 0, route
        for route in RATE_LIMITED:
            assert refused[route, 429] > 0, route

        # Every member sees their answer once.
        for submitted in submissions[:-1]:
            task = tasks[submitted.user]
            assert title(task) == RECORDED and submitted.followups == []
            assert [r.embeds[0].get("title") if r.embeds else None for r in task.history].count(RECORDED) == 1
        echo = submissions[-1].followups
        assert len(echo) == 1 and "same text" in str(echo[0].embeds) and COPIED in str(echo[0].embeds)
        assert title(tasks[copier]) != RECORDED
        for clicked in confirmations:
            assert title(ready[clicked.user]) == RECORDED and clicked.followups == []
        assert shown_settings.original.embeds and len(shown_settings.messages) == 1
        assert stats.original.embeds and len(stats.messages) == 1
        chart = stats.original.attachments
        assert len(chart) == 1 and chart[0].data.startswith(b"\x89PNG")
        assert "Accepted" in str(review_post.embeds)
        posts = emu.bot_messages(replies)
        assert len(posts) == 1 and {"👍", "👎", "🚩"} <= set(posts[0].reactions)
        for user, message in asked.items():
            assert len([m for m in emu.bot_messages(user) if m.id > message.id]) == 1

        # Every submission is stored once; the post is recorded once, with the message that was posted.
        db_path = tmp_path / "bot.db"
        assert await duplicated_texts(f"sqlite+aiosqlite:///{db_path}", [*texts.values()]) == []
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            stored = Counter(text for (text,) in conn.execute("SELECT text FROM messages"))
            labelled = Counter(user for (user,) in conn.execute(
                "SELECT u.discord_id FROM tasks t JOIN users u ON u.id = t.user_id "
                "WHERE t.kind = 'label_initial_prompt' AND t.state = 'done'"))
        assert all(stored[text] == 1 for text in texts.values())
        assert [labelled[int(user.id)] for user in reviewers] == [1, 1]
        async with bot.services.sessions() as db:
            recorded_posts = (await db.execute(select(BotPost.discord_message_id)
                                               .where(BotPost.channel_id == replies.id))).scalars().all()
            by_role = dict((await db.execute(select(ChatMessage.role, func.count())
                                             .group_by(ChatMessage.role))).all())
        assert recorded_posts == [posts[0].id]
        assert by_role.get(ChatRole.USER, 0) == len(chatters) == by_role.get(ChatRole.ASSISTANT, 0)
        server_errors = sum(n for (_, status), n in refused.items() if status >= 500)
        lost = sum(not done for done in answers_shown().values())
        duplicated = sum(n - 1 for n in stored.values() if n > 1) + len(posts) - 1
        print(f"\nREST outage {OUTAGE:.0f} s: calls refused with 5xx {server_errors}, with 429 "
              f"{sum(n for (_, status), n in refused.items() if status == 429)}; replies delivered late "
              f"{len(missing_at_recovery)} of {len(answers_shown())} (all within {caught_up:.0f} s of the end), "
              f"lost {lost}, duplicated {duplicated}; submissions stored once {len(writers) + len(reviewers)}; "
              f"chat answers {len(chatters)}; post posted once")


@pytest.mark.parametrize("quick", [0.5, 0.0], ids=["answered-at-once", "deferred"])
async def test_a_first_answer_refused_past_3_s_keeps_the_work_and_a_resubmission_is_stored_once(
        emulator, start_bot, tmp_path, caplog, monkeypatch, quick):  # noqa: F811
    """Discord refuses the first answer (a 503 outage on the callback route) until the interaction is past
    its 3 s: no bot can answer it. The prompt was stored before the answer; the member, who saw nothing,
    sends it again from the same task and is told it was recorded once."""
    monkeypatch.setattr(answering, "QUICK_SECONDS", quick)
    emu = emulator
    guild = await emu.create_guild("Callback outage")
    writer = await emu.create_user("writer", guild=guild)
    text = "Why do cats purr, and can they purr while breathing in?"
    async with start_bot(settings_for(tmp_path, chat=False)):
        clicker = Clicker(emu, writer)
        task = await clicker.task("prompt")
        opened = await clicker.open_modal(task)
        emu.faults.fail(CALLBACK, 503, seconds=6)
        submitted = await opened.submit_modal({"lt:text": text})
        # discord.py retries the 503 by itself; its first retry after the outage is too late (10062).
        await emu.wait_for(lambda: 10062 in submitted.errors, timeout=60, what="the answer refused as too late")
        assert submitted.response is None and title(task) != RECORDED
        db_path = tmp_path / "bot.db"
        assert await duplicated_texts(f"sqlite+aiosqlite:///{db_path}", [text]) == []
        await emu.wait_for(lambda: any("could not answer interaction" in r.getMessage() for r in caplog.records),
                           timeout=30, what="the bot giving up on the answer")

        again = await clicker.write(task, text)
        assert "That task is already done; it was recorded once." in str(again.embeds)
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
            assert conn.execute("SELECT count(*) FROM messages WHERE text = ?", (text,)).fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM tasks WHERE kind = 'initial_prompt' AND state = 'done'"
                                ).fetchone() == (1,)
        assert errors_logged(caplog) == []


async def test_a_task_post_goes_out_once_through_lost_answers_refusals_and_refused_seeds(
        emulator, start_bot, tmp_path, caplog):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Post outage", channels=["general", "replies"])
    replies = guild.channel("replies")
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    settings = settings_for(tmp_path, chat=False).model_copy(deep=True)
    settings.posts.first_post_delay_seconds = 3600  # posts come from the calls below, not the scheduler
    async with start_bot(settings) as bot:
        posts = bot.get_cog("Posts")
        await accepted_prompt(bot.services.labelling, TO_ANSWER)
        await (await mod.slash("admin channel set", {"channel": replies, "kinds": "reply"},
                               channel=guild.channel("general"))).wait_message()

        async def recorded() -> list[int]:
            async with bot.services.sessions() as db:
                return list((await db.execute(select(BotPost.discord_message_id)
                                              .where(BotPost.channel_id == replies.id))).scalars())

        # An outage longer than the post's retries: nothing is posted, nothing recorded.
        emu.faults.fail(SEND, 503, seconds=30)
        assert await posts.post_next(replies.id, retry_minutes=0.05) is None
        assert emu.bot_messages(replies) == [] and await recorded() == []
        emu.faults.clear()

        # Discord posts it but the answer is lost twice; then the seeds are rate limited for a while.
        emu.faults.fail(SEND, 503, times=2, handled=True)
        emu.faults.rate_limit(SEED, 1.0, seconds=8)
        ref = await posts.post_next(replies.id)
        shown = emu.bot_messages(replies)
        assert [m.id for m in shown] == [ref.discord_message_id] == await recorded()
        assert [c.status for c in emu.calls_to(SEND) if c.path.startswith(f"/channels/{replies.id}/")][-3:] == \
            [503, 503, 200]
        assert {"👍", "👎", "🚩"} <= set(shown[0].reactions)
        assert 429 in {c.status for c in emu.calls_to(SEED)}
        assert errors_logged(caplog) == []


async def test_an_answer_outlasting_the_token_is_given_up_with_a_log_line(
        emulator, start_bot, tmp_path, caplog, monkeypatch):  # noqa: F811
    """An outage longer than the interaction's token (15 minutes on Discord; 5 s here) ends the retries with
    one warning; the bot answers the next interaction as usual."""
    monkeypatch.setattr(answering, "QUICK_SECONDS", 0)
    monkeypatch.setattr(delivery, "TOKEN_LIFE", timedelta(seconds=5))
    monkeypatch.setattr(delivery, "LAST_ATTEMPT", timedelta(0))
    emu = emulator
    emu.interaction_token_ttl = 5
    guild = await emu.create_guild("Long outage")
    member = await emu.create_user("member", guild=guild)
    async with start_bot(settings_for(tmp_path, chat=False)):
        emu.faults.rate_limit(EDIT_ORIGINAL, 0.2, seconds=600)
        lost = await member.slash("task", {"kind": "prompt"})
        await emu.wait_for(lambda: [r for r in caplog.records if "gave up edit the answer" in r.getMessage()],
                           timeout=60, what="the bot giving up")
        assert lost.original is not None and lost.original.loading
        emu.faults.clear()
        assert title(await Clicker(emu, member).task("prompt")) == "Write a prompt"
        assert errors_logged(caplog) == []

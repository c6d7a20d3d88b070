"""Six members take a prompt from first draft to an exported, ranked tree through /task alone."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import select

from bot.cli import main as oabot
from storage.enums import TreeState
from storage.models import Message, MessageTree, User

PROMPT = "What is the tallest mountain on Earth, and how tall is it?"
GOOD = "Mount Everest, at 8,849 metres above sea level (the 2020 survey by China and Nepal)."
WEAK = "Probably Everest, it is very high."
FOLLOW_UP = "Is it also the tallest when measured from its base?"
ANSWER = "No: Mauna Kea is taller from base to peak, about 10,200 metres, most of it under the sea."


def outcome(message) -> str:
    return message.embeds[0]["title"] + " " + message.embeds[0]["description"]


async def test_six_members_take_a_prompt_to_an_exported_ranked_tree(
    emulator, start_bot, make_settings, clicker, tmp_path
):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["tasks"])
    channel = guild.channel("tasks")
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    users = {name: await emu.create_user(name, guild=guild) for name in names}
    # Most work happens in the guild channel; erin works in DMs with the bot.
    alice, bob, carol, dave, frank = (clicker(users[n], channel) for n in ("alice", "bob", "carol", "dave", "frank"))
    erin = clicker(users["erin"])
    settings = make_settings()
    async with start_bot(settings) as bot:
        sessions = bot.services.sessions

        # 1. alice writes the prompt.
        task = await alice.task("prompt")
        assert task.embeds[0]["title"] == "Write a prompt"
        done = await alice.write(task, PROMPT)
        assert "0.1 points" in outcome(done) and "2 reviewers will check your prompt" in outcome(done)
        assert alice.ids(done, "lt:next:") == ["lt:next:prompt:en"]

        # 2. bob and carol review it (full review: 11 questions over several pages).
        for reviewer in (bob, carol):
            task = await reviewer.task("review")
            assert task.embeds[0]["title"] == "Review a prompt" and "Full review: 11 questions" in task.embeds[0]["description"]
            assert task.embeds[1] == {**task.embeds[1], "title": "User · the message to review", "description": PROMPT}
            done = await reviewer.review(task, scale=4)
            assert "2 points" in outcome(done)
        assert "the message was accepted" in outcome(done)

        # 3. dave and erin answer as the assistant; each sees the prompt to reply to.
        for writer, text in ((dave, GOOD), (erin, WEAK)):
            task = await writer.task("assistant_reply")
            assert task.embeds[0]["title"] == "Reply as the assistant"
            assert task.embeds[1]["title"] == "User · reply to this" and task.embeds[1]["description"] == PROMPT
            done = await writer.write(task, text)
            assert "4 points" in outcome(done) and "2 reviewers will check your reply" in outcome(done)

        # 4. bob and carol review both replies (quick reviews); the second comes from "Next task".
        for reviewer in (bob, carol):
            task = await reviewer.task("review")
            assert task.embeds[0]["title"] == "Review an assistant reply"
            done = await reviewer.review(task, scale=3)
            assert "1 point" in outcome(done)
            task = await reviewer.click(done, "lt:next:review:en")
            assert task.embeds[0]["title"] == "Review an assistant reply"
            await reviewer.review(task, scale=3)

        # 5. frank continues as the user, below one of the replies; dave answers him. Both are reviewed.
        task = await frank.task("prompter_reply")
        assert [e["title"] for e in task.embeds[1:]] == ["User", "Assistant · reply to this"]
        done = await frank.write(task, FOLLOW_UP)
        assert "1 point" in outcome(done)
        for reviewer in (bob, carol):
            task = await reviewer.task("review")
            assert task.embeds[0]["title"] == "Review a user reply"
            await reviewer.review(task)
        task = await dave.task("assistant_reply")
        assert [e["title"] for e in task.embeds[1:]] == ["User", "Assistant", "User · reply to this"]
        await dave.write(task, ANSWER)
        for reviewer in (bob, carol):
            await reviewer.review(await reviewer.task("review"))
        async with sessions() as session:
            assert await session.scalar(select(MessageTree.state)) == TreeState.RANKING

        # 6. Nobody ranks a set holding their own reply, nor reviews their own text.
        for author in (dave, erin):
            refused = await author.task("rank")
            assert refused.content == "There is no task of this kind in your language right now; please try again later."

        # 7. alice, bob and carol rank the two replies through the select: the precise one first.
        for ranker in (alice, bob, carol):
            task = await ranker.task("rank")
            assert task.embeds[0]["title"] == "Rank the assistant replies"
            letters = {text: letter for letter, text in ranker.reply_letters(task).items()}
            done = await ranker.rank(task, [letters[GOOD], letters[WEAK]])
            assert "Thank you, recorded!" in outcome(done)
        assert "the consensus is reached" in outcome(done)

        async with sessions() as session:
            assert await session.scalar(select(MessageTree.state)) == TreeState.READY_FOR_EXPORT
            ranks = dict((await session.execute(select(Message.text, Message.rank).where(Message.depth == 1))).all())
            assert ranks == {GOOD: 0, WEAK: 1}
            points = dict((await session.execute(select(User.display_name, User.points))).all())
            assert points["dave"] > points["erin"] > 0  # the rankings placed dave's reply first

        # 8. /leaderboard shows the six members in the order of their points, with their points.
        board = await (await users["frank"].slash("leaderboard", {"period": "all"}, channel=channel)).wait_message()
        lines = board.embeds[0]["description"].splitlines()
        expected = sorted(((p, n) for n, p in points.items() if p > 0), key=lambda row: -row[0])
        assert len(lines) == len(expected)
        for line, (total, name) in zip(lines, expected, strict=True):
            assert f"**{name}**" in line and f"{round(total, 2):g} pts" in line

    # The export holds the whole tree, with the ranks and the reviewers' labels.
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    out = tmp_path / "trees.jsonl"
    assert await asyncio.to_thread(oabot, ["export", "--config", str(config), "--format", "oasst-trees",
                                           "-o", str(out)]) == 0
    [tree] = [json.loads(line) for line in out.read_text().splitlines()]
    assert tree["tree_state"] == "ready_for_export"
    prompt = tree["prompt"]
    assert prompt["text"] == PROMPT and prompt["labels"]["spam"] == {"value": 0.0, "count": 2}
    assert prompt["labels"]["quality"] == {"value": 0.75, "count": 2}
    assert [(r["text"], r["rank"]) for r in prompt["replies"]] == [(GOOD, 0), (WEAK, 1)]
    assert all(r["labels"]["quality"]["value"] == 0.5 for r in prompt["replies"])
    follow_ups = [child for reply in prompt["replies"] for child in reply.get("replies", [])]
    assert [child["text"] for child in follow_ups] == [FOLLOW_UP]
    assert [answer["text"] for answer in follow_ups[0]["replies"]] == [ANSWER]

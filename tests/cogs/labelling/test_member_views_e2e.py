"""/leaderboard, /profile, /tasks, /settings and /help end to end: the real bot, discord.py and the emulator.

The labelling work itself (prompts, reviews, replies, rankings) goes through the bot's own engine service
with the members' Discord ids, as the task cogs do; what is checked here is what members see of it.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from bot.app import OABot
from bot.cli import main as oabot
from bot.config import Settings
from bot.labelling import points
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from storage.enums import TaskKind
from storage.models import Message, User

COGS = ["cogs.labelling.board", "cogs.labelling.member_settings", "cogs.labelling.help"]
# Small trees: prompt + 2 replies, 2 reviews each, 3 rankings finish a tree (three, so that each ranking's
# agreement can be measured against the other two).
SMALL = dict(reviews_initial_prompt=2, reviews_reply=2, goal_tree_size=3, max_children=2, max_tree_depth=1,
             rankings_needed=3)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
        discord={"cogs": COGS},
        chat={"enabled": False},
        labelling=SMALL,
    )


class Engine:
    """Labelling work done through the running bot's engine service, keyed by the members' Discord ids."""

    def __init__(self, bot: OABot) -> None:
        self.service = bot.services.labelling

    async def uid(self, member) -> int:
        return (await self.service.get_or_create_user(member.id, display_name=member.username)).id

    async def prompt(self, member, text: str) -> int:
        user = await self.uid(member)
        offer = await self.service.request_task(user, kinds=[TaskKind.INITIAL_PROMPT])
        return (await self.service.submit_initial_prompt(offer.task_id, user, text)).message_id

    async def review(self, member, kind: TaskKind) -> None:
        user = await self.uid(member)
        offer = await self.service.request_task(user, kinds=[kind])
        labels = {name: 0.75 if name in ("quality", "helpfulness") else 0.0 for name in offer.label_names}
        await self.service.submit_labels(offer.task_id, user, labels)

    async def reply(self, member, text: str) -> int:
        user = await self.uid(member)
        offer = await self.service.request_task(user, kinds=[TaskKind.ASSISTANT_REPLY])
        return (await self.service.submit_reply(offer.task_id, user, text)).message_id

    async def rank(self, member, best_first: list[int]) -> None:
        user = await self.uid(member)
        offer = await self.service.request_task(user, kinds=[TaskKind.RANK_ASSISTANT_REPLIES])
        await self.service.submit_ranking(offer.task_id, user, best_first)

    async def finished_tree(self, author, writers, reviewers, rankers) -> tuple[int, list[int]]:
        """A prompt taken to ready_for_export; the first writer's reply is ranked best by everyone."""
        prompt = await self.prompt(author, f"What should {author.username} know about tides?")
        for reviewer in reviewers:
            await self.review(reviewer, TaskKind.LABEL_INITIAL_PROMPT)
        replies = [await self.reply(writer, f"Tides follow the moon, says {writer.username}.") for writer in writers]
        for _ in replies:
            for reviewer in reviewers:
                await self.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
        for ranker in rankers:
            await self.rank(ranker, replies)
        return prompt, replies

    async def give(self, member, amount: float) -> None:
        """Points straight through the engine's award(), for boards with many members."""
        user = await self.uid(member)
        async with self.service.sessions.begin() as session:
            await points.award(session, self.service.ctx, user, amount, "ranking")


def shown_text(message) -> str:
    """Everything a member can read on a message: content, embeds, button labels."""
    labels = [c.get("label") or "" for row in message.components for c in row.get("components", [])]
    return "\n".join([message.content, json.dumps(message.embeds, ensure_ascii=False), *labels])


def board_lines(message) -> list[str]:
    return message.embeds[0]["description"].splitlines()


def field(message, name: str) -> str:
    return next(f["value"] for f in message.embeds[0].get("fields", []) if f["name"] == name)


def assert_no_raw_ids(emu, message) -> None:
    text = shown_text(message) + " ".join(message.custom_ids)
    for user in emu.users.values():
        assert str(user.id) not in text, f"{user.username}'s Discord id is shown"
    assert "<@" not in text


def no_pings(emu) -> None:
    """Every message the bot sent or edited forbade mentions."""
    bodies = [call.body for call in emu.calls if call.method in ("POST", "PATCH") and isinstance(call.body, dict)]
    sent = [body for body in bodies if "embeds" in body or "content" in body or "data" in body]
    assert sent
    for body in sent:
        payload = body.get("data", body)
        if "embeds" in payload or "content" in payload:
            assert payload.get("allowed_mentions", {}).get("parse") == [], payload


async def test_work_done_shows_on_profile_and_leaderboard(emulator, start_bot, settings):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general"])
    general = guild.channel("general")
    names = ["ana", "ben", "cleo", "dev", "eve", "finn", "gus", "ivy"]
    ana, ben, cleo, dev, eve, finn, gus, ivy = [await emu.create_user(name, guild=guild) for name in names]
    async with start_bot(settings) as bot:
        engine = Engine(bot)
        # ana asks, ben and cleo answer, dev and eve review everything, finn, gus and ivy rank ben's reply first.
        _, replies = await engine.finished_tree(ana, [ben, cleo], [dev, eve], [finn, gus, ivy])

        async with bot.services.sessions() as session:
            expected = (await session.execute(
                select(User.display_name, User.points).where(User.points > 0).order_by(User.points.desc(), User.id)
            )).all()
        assert [name for name, _ in expected][:1] == ["ben"]  # written, accepted and ranked first

        it = await dev.slash("leaderboard", {"period": "all"}, channel=general)
        board = await it.wait_message()
        assert not board.ephemeral
        lines = board_lines(board)
        assert len(lines) == len(expected) == 8
        for line, (name, total) in zip(lines, expected, strict=True):
            assert f"**{name}**" in line and f"{round(total, 2):g} pts" in line
        assert lines[[name for name, _ in expected].index("dev")].endswith("← you")
        assert "#" in field(board, "Your standing") and "page 1" in field(board, "Your standing")
        assert_no_raw_ids(emu, board)

        # dev's own profile: three reviews of the prompt and two replies... and no ranking.
        it = await dev.slash("profile", channel=general)
        profile = await it.wait_message()
        assert profile.ephemeral
        counts = field(profile, "Contributions")
        assert "Reviews: **3**" in counts and "Rankings: **0**" in counts
        assert "reviewed a message" in field(profile, "Recent points")
        # finn's rankings agreed with the consensus: anyone may see it.
        it = await ana.slash("profile", {"member": finn}, channel=general)
        seen = await it.wait_message()
        assert seen.embeds[0]["title"] == "finn: profile"
        assert "Rankings: **1**" in field(seen, "Contributions")
        assert "**1** of 1 rankings good" in field(seen, "Ranking agreement")
        assert "agreed with the consensus" in field(seen, "Recent points")
        assert "▰" in field(seen, "Level") or "▱" in field(seen, "Level")
        # ben's reply: the assistant reply count and the placement.
        it = await ana.slash("profile", {"member": ben}, channel=general)
        writer = await it.wait_message()
        assert "Assistant replies: **1**" in field(writer, "Contributions")
        assert "Week: #1" in field(writer, "Rank")
        assert_no_raw_ids(emu, writer)

        # Someone who never contributed is welcomed, not shown zeros.
        newcomer = await emu.create_user("hana", guild=guild)
        it = await newcomer.slash("profile", channel=general)
        assert "Nothing yet" in (await it.wait_message()).embeds[0]["description"]
        async with bot.services.sessions() as session:
            assert await session.scalar(select(User.display_name).where(User.discord_id == newcomer.id)) == "hana"
            assert await session.get(Message, replies[0]) is not None
    no_pings(emu)


async def test_pages_survive_a_restart_and_leavers_get_pseudonyms(emulator, start_bot, settings):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general"])
    general = guild.channel("general")
    members = [await emu.create_user(f"member{n:02d}", guild=guild) for n in range(13)]
    caller, leaver = members[-1], members[0]
    async with start_bot(settings) as bot:
        engine = Engine(bot)
        for rank, member in enumerate(members):
            await engine.give(member, 100 - rank)  # member00 leads, the caller is 13th
        # member00 leaves the server: their stored name must not appear any more.
        del guild.members[leaver.id]

        it = await caller.slash("leaderboard", channel=general)
        board = await it.wait_message()
        lines = board_lines(board)
        assert len(lines) == 10 and "**member01**" in lines[1]
        assert lines[0].startswith("`#  1` **Contributor ") and "member00" not in shown_text(board)
        pseudonym = lines[0].split("**")[1]
        assert field(board, "Your standing").startswith("#13 of 13 · 88 pts") and "page 2" in field(board, "Your standing")
        assert board.embeds[0]["footer"]["text"] == "Page 1 of 2 · 13 contributors"
        assert_no_raw_ids(emu, board)
        next_button, previous_button = board.custom_ids[1], board.custom_ids[0]

        # In a DM the bot asks its server: the same names, the same pseudonym.
        it = await caller.slash("leaderboard")
        in_dm = await it.wait_message()
        assert board_lines(in_dm) == lines and "member00" not in shown_text(in_dm)

        click = await caller.click(board, next_button)
        assert (await click.wait_response()).kind == "deferred_update"
        await emu.wait_for(lambda: "Page 2 of 2" in board.embeds[0]["footer"]["text"], what="page 2")
        assert board_lines(board)[-1].startswith("`# 13` **member12**") and board_lines(board)[-1].endswith("← you")

    # The same database, a new process: the old buttons still turn the pages.
    async with start_bot(settings):
        click = await caller.click(board, previous_button)
        await click.wait_response()
        await emu.wait_for(lambda: "Page 1 of 2" in board.embeds[0]["footer"]["text"], what="page 1 again")
        assert board_lines(board)[0].split("**")[1] == pseudonym  # stable across restarts

        # Someone else pressing the caller's button gets their own copy, privately; the public one stays.
        other = members[3]
        click = await other.click(board, next_button)
        copy = await click.wait_message()
        assert copy.ephemeral and "#4 of 13" in field(copy, "Your standing") and "(page 1)" in field(copy, "Your standing")
        assert "Page 2 of 2" in copy.embeds[0]["footer"]["text"]
        assert "Page 1 of 2" in board.embeds[0]["footer"]["text"] and "#13" in field(board, "Your standing")
        assert_no_raw_ids(emu, copy)

        # A stale button: three members opt out, the board now fits one page, and the old Next shows it.
        for member in members[4:7]:
            await (await member.slash("settings optout", {"state": "on"}, channel=general)).wait_message()
        click = await caller.click(board, next_button)
        await click.wait_response()
        await emu.wait_for(lambda: "Page 1 of 1 · 10" in board.embeds[0]["footer"]["text"], what="the only page")
        assert field(board, "Your standing").startswith("#10 of 10")
        assert all(button.get("disabled") for row in board.components for button in row["components"])
    no_pings(emu)


async def test_language_setting_picks_the_tasks_shown(emulator, start_bot, settings):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general"])
    general = guild.channel("general")
    author, member = await emu.create_user("author", guild=guild), await emu.create_user("mira", guild=guild)
    async with start_bot(settings) as bot:
        engine = Engine(bot)
        service = bot.services.labelling
        # One prompt waiting for review in German, none in English.
        user = await engine.uid(author)
        offer = await service.request_task(user, "de", kinds=[TaskKind.INITIAL_PROMPT])
        await service.submit_initial_prompt(offer.task_id, user, "Wie entstehen Gezeiten?")

        it = await member.slash("tasks", channel=general)
        english = await it.wait_message()
        assert english.ephemeral and english.embeds[0]["title"] == "Work for you in en (your Discord language)"
        assert "▫️ Review a new prompt · nothing right now" in english.embeds[0]["description"]

        it = await member.slash("settings language", {"tag": "de-DE"}, channel=general)
        done = await it.wait_message()
        assert "now in **de**" in done.content
        it = await member.slash("tasks", channel=general)
        german = await it.wait_message()
        assert german.embeds[0]["title"] == "Work for you in de (your /settings language)"
        assert "✅ Review a new prompt" in german.embeds[0]["description"]
        assert "prompt in review: **1**" in field(german, "Conversation trees in de")

        # A bad tag is refused and changes nothing; the option overrides for one call; auto goes back.
        it = await member.slash("settings language", {"tag": "not a tag!"}, channel=general)
        refusal = await it.wait_message()
        assert refusal.ephemeral and "not a language tag" in refusal.content
        it = await member.slash("settings show", channel=general)
        assert "**de** (chosen" in field(await it.wait_message(), "Labelling language")
        it = await member.slash("tasks", {"language": "en"}, channel=general)
        assert (await it.wait_message()).embeds[0]["title"] == "Work for you in en (as you asked)"
        it = await member.slash("settings language", {"tag": "auto"}, channel=general)
        assert "follow your Discord language (**en**)" in (await it.wait_message()).content
        async with bot.services.sessions() as session:
            assert await session.scalar(select(User.language).where(User.discord_id == member.id)) is None


async def test_optout_hides_a_member_from_leaderboard_and_export(emulator, start_bot, settings, tmp_path):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general"])
    general = guild.channel("general")
    crew = [await emu.create_user(name, guild=guild)
            for name in ("ana", "ben", "cleo", "dev", "eve", "finn", "gus", "ivy")]
    ana, ben, cleo, dev, eve, finn, gus, ivy = crew
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')

    async def export() -> str:
        out = tmp_path / "trees.jsonl"
        args = ["export", "--config", str(config), "--format", "oasst-trees", "-o", str(out)]
        assert await asyncio.to_thread(oabot, args) == 0
        return out.read_text()

    async with start_bot(settings) as bot:
        await Engine(bot).finished_tree(ana, [ben, cleo], [dev, eve], [finn, gus, ivy])
        assert "says ben" in await export()

        it = await ben.slash("settings optout", {"state": "on"}, channel=general)
        done = await it.wait_message()
        assert done.ephemeral and "stay out of every export" in done.content

        it = await ana.slash("leaderboard", {"period": "all"}, channel=general)
        board = await it.wait_message()
        assert "ben" not in board.embeds[0]["description"] and "**cleo**" in board.embeds[0]["description"]
        it = await ben.slash("leaderboard", {"period": "all"}, channel=general)
        assert "you opted out" in field(await it.wait_message(), "Your standing")
        # His profile is his alone now.
        it = await ana.slash("profile", {"member": ben}, channel=general)
        assert "keeps their profile private" in (await it.wait_message()).content
        it = await ben.slash("profile", channel=general)
        assert "Only you can see this" in (await it.wait_message()).embeds[0]["footer"]["text"]

        exported = await export()
        assert "says ben" not in exported and "says cleo" in exported

        it = await ben.slash("settings optout", {"state": "off"}, channel=general)
        await it.wait_message()
        it = await ana.slash("leaderboard", {"period": "all"}, channel=general)
        assert "**ben**" in (await it.wait_message()).embeds[0]["description"]


async def test_help_lists_the_commands_and_the_points(emulator, start_bot, settings):  # noqa: F811
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general"])
    reader = await emu.create_user("reader", guild=guild)
    settings.labelling.points.assistant_reply = 5
    async with start_bot(settings):
        it = await reader.slash("help", channel=guild.channel("general"))
        response = await it.wait_response()
        help_text = response.message.embeds[0]
        assert response.ephemeral
        for command in ("/leaderboard", "/profile", "/tasks", "/settings language", "/settings optout",
                        "/settings show", "/help"):
            assert f"`{command}`" in help_text["description"]
        points_field = next(f["value"] for f in help_text["fields"] if f["name"] == "Points")
        assert "Write an assistant reply: **5**" in points_field
        assert "/tutorial" in next(f["value"] for f in help_text["fields"] if f["name"] == "Where to start")

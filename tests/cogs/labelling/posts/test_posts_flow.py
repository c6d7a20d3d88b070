"""A moderator sets task channels; members who never type a command write, review and rank by buttons and
reactions on the bot's posts until the tree is exported, and the posts are edited to show the results."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.enums import TreeState
from storage.models import BotPost, Label, MemberNotice, Message, MessageTree, PostMessage, Ranking, Reaction
from tests.cogs.labelling.posts.conftest import eventually
from tests.cogs.labelling.tasks.conftest import Clicker

PROMPT = "What is the tallest mountain on Earth, and how tall is it?"
GOOD = "Mount Everest, at 8,849 metres above sea level (the 2020 survey by China and Nepal)."
WEAK = "Probably Everest, it is very high."


async def write_from_post(emu, user, post, text: str):
    """Press the post's write button and send the modal; returns the ephemeral answer."""
    opened = await user.click(post, "lp:write")
    modal = await opened.wait_modal()
    assert modal["custom_id"].startswith("lp:m:")
    answer = await (await opened.submit_modal({"lt:text": text})).wait_message()
    assert answer.ephemeral
    return answer


async def test_members_label_a_tree_to_export_through_channel_posts(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "prompts", "replies", "reviews", "rankings"])
    channels = {name: guild.channel(name) for name in ("prompts", "replies", "reviews", "rankings")}
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    users = {name: await emu.create_user(name, guild=guild, accepts_dms=name != "erin") for name in names}
    alice, bob, carol, dave, erin, frank = (users[n] for n in names)
    async with start_bot(make_settings()) as bot:
        sessions = bot.services.sessions
        posts = bot.get_cog("Posts")

        # 1. A moderator makes one channel per kind of work.
        for name, channel in channels.items():
            answer = await (await mod.slash("admin channel set", {"channel": channel, "kinds": name, "interval": 30},
                                            channel=guild.channel("general"))).wait_message()
            assert answer.ephemeral and answer.content.startswith("Task channel set:")
            assert "every **30 min**" in answer.content
            job = bot.jobs.scheduler.get_job(f"posts:{channel.id}")
            assert job is not None and job.trigger.interval.total_seconds() == 30 * 60
        shown = await (await mod.slash("admin channel show", channel=guild.channel("general"))).wait_message()
        assert len(shown.content.splitlines()) == 4 and "rankings" in shown.content

        async def post(name: str):
            ref = await posts.post_next(channels[name].id)
            assert ref is not None, f"nothing posted in #{name}"
            return emu.get_message(ref.discord_message_id)

        # 2. A call for prompts; alice writes one from its button.
        call = await post("prompts")
        assert call.embeds[0]["title"] == "Write a prompt" and call.custom_ids == ["lp:write"]
        answer = await write_from_post(emu, alice, call, PROMPT)
        assert answer.embeds[0]["title"] == "Thank you, recorded!"
        # Nothing else to post there: the call is still the newest post.
        assert await posts.post_next(channels["prompts"].id) is None

        # 3. A review post: bob reviews by 👍, carol through "Full review" (part 1's paged review).
        review = await post("reviews")
        assert review.embeds[0]["title"] == "Review a prompt" and review.embeds[1]["description"] == PROMPT
        assert set(review.reactions) == {"👍", "👎", "🚩"} and review.custom_ids == ["lp:review"]
        # alice cannot review her own prompt: her reaction is taken off and she is told by DM.
        await alice.react(review, "👍")
        dm = await emu.wait_for_message(alice, lambda m: "your own text" in m.content)
        assert "👍" in dm.content
        await emu.wait_for(lambda: alice.id not in review.reactions.get("👍", []), what="the reaction removed")
        await bob.react(review, "👍")
        await eventually(lambda: _count(sessions, Label, Label.name == "spam"))
        full = await (await carol.click(review, "lp:review")).wait_message()
        assert full.ephemeral and "Full review: 11 questions" in full.embeds[0]["description"]
        done = await Clicker(emu, carol).review(full, scale=4)
        assert "the message was accepted" in done.embeds[0]["description"]
        await emu.wait_for_edit(review, closed)
        assert review.embeds[0]["title"] == "Closed · Review a prompt"
        assert "Accepted after 2 reviews" in review.embeds[0]["description"] and not review.custom_ids

        # 4. A reply post: dave and erin answer as the assistant; the post closes when full.
        reply = await post("replies")
        assert reply.embeds[0]["title"] == "Reply as the assistant"
        assert reply.embeds[1]["title"] == "User · reply to this" and reply.embeds[1]["description"] == PROMPT
        refused = await (await alice.click(reply, "lp:write")).wait_message()
        assert "your own text" in refused.content  # nobody answers their own prompt
        await write_from_post(emu, dave, reply, GOOD)
        await write_from_post(emu, erin, reply, WEAK)
        await emu.wait_for_edit(reply, closed)
        assert reply.embeds[0]["title"] == "Closed · Reply as the assistant"
        assert "2 replies written" in reply.embeds[0]["description"]
        # A vote on the prompt, through the reply post that shows it.
        await frank.react(reply, "👍")
        await eventually(lambda: _count(sessions, Reaction, Reaction.emoji == "+1"))

        # 5. Two review posts, one per reply; bob and carol review both by 👍.
        for _ in range(2):
            review = await post("reviews")
            assert review.embeds[0]["title"] == "Review an assistant reply"
            for reviewer in (bob, carol):
                await reviewer.react(review, "👍")
            await emu.wait_for_edit(review, closed)
            assert "Accepted after 2 reviews" in review.embeds[0]["description"]
        async with sessions() as session:
            assert await session.scalar(select(MessageTree.state)) == TreeState.RANKING

        # 6. A ranking post: numbers for the two replies, ranked by reacting best first.
        ranking = await post("rankings")
        assert ranking.embeds[0]["title"] == "Rank the assistant replies"
        numbered = {e["description"]: e["title"].split()[0] for e in ranking.embeds[1:] if e["title"][0] in "12"}
        best, worst = numbered[GOOD], numbered[WEAK]
        assert set(ranking.reactions) == {"1️⃣", "2️⃣"} and ranking.custom_ids == ["lp:rank"]
        # dave wrote a candidate: his number is taken off; erin closed her DMs, so she is told at her next click.
        await dave.react(ranking, best)
        await emu.wait_for_message(dave, lambda m: "your own text" in m.content)
        await erin.react(ranking, best)
        await eventually(lambda: _count(sessions, MemberNotice, MemberNotice.discord_user_id == erin.id))
        refused = await (await erin.click(ranking, "lp:rank")).wait_message()
        assert "your own text" in refused.content
        # alice starts, removes her first number (her ranking starts over), then ranks for real.
        await alice.react(ranking, worst)
        await alice.unreact(ranking, worst)
        await alice.react(ranking, best)
        await alice.react(ranking, worst)
        await eventually(lambda: _count(sessions, Ranking, Ranking.user_id.is_not(None)))
        # frank ranks privately through part 1's select flow; bob by reactions, which completes the set.
        private = await (await frank.click(ranking, "lp:rank")).wait_message()
        assert private.ephemeral and private.embeds[0]["title"] == "Rank the assistant replies"
        letters = {text: letter for letter, text in Clicker.reply_letters(private).items()}
        await Clicker(emu, frank).rank(private, [letters[GOOD], letters[WEAK]])
        await bob.react(ranking, best)
        await bob.react(ranking, worst)
        await eventually(lambda: _tree_state(sessions, TreeState.READY_FOR_EXPORT))
        await emu.wait_for_edit(ranking, lambda m: "Consensus" in m.embeds[0]["description"])
        assert ranking.embeds[0]["title"] == "Closed · Rank the assistant replies"
        assert f"best first: {best} > {worst}" in ranking.embeds[0]["description"]

        async with sessions() as session:
            ranks = dict((await session.execute(select(Message.text, Message.rank).where(Message.depth == 1))).all())
            assert ranks == {GOOD: 0, WEAK: 1}
            orders = (await session.scalars(select(Ranking.ordered_ids).order_by(Ranking.id))).all()
            assert len(orders) == 3 and all(order[0] == orders[0][0] for order in orders)
            # The mapping: the prompt shows in the review post, as context of the others, and is the
            # subject of the reply and ranking posts.
            prompt_id = await session.scalar(select(Message.id).where(Message.depth == 0))
            mapped = (await session.execute(
                select(BotPost.kind, PostMessage.role).join(PostMessage, PostMessage.post_id == BotPost.id)
                .where(PostMessage.message_id == prompt_id).order_by(BotPost.id))).all()
            assert [tuple(row) for row in mapped] == [
                ("review", "subject"), ("reply", "subject"), ("review", "context"), ("review", "context"),
                ("rank", "subject")]


def closed(message) -> bool:
    return message.embeds[0]["title"].startswith("Closed")


async def _count(sessions, model, *conditions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0


async def _tree_state(sessions, state) -> bool:
    async with sessions() as session:
        return await session.scalar(select(MessageTree.state)) == state

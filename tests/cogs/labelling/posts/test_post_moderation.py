"""Red flags on a post auto-moderate a reply and every post showing it is edited; with reaction reviews
switched off, 👍 on a review post is a vote only (Open-Assistant's rule)."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.enums import TaskKind
from storage.models import Label, Message, Reaction
from tests.cogs.labelling.posts.conftest import eventually
from tests.cogs.labelling.posts.test_reaction_replay import accepted_prompt


async def reply_in_review(labelling, prompt_text: str, reply_text: str) -> int:
    await accepted_prompt(labelling, prompt_text)
    writer = await labelling.get_or_create_user(900_010)
    offer = await labelling.request_task(writer.id, kinds=TaskKind.ASSISTANT_REPLY)
    return (await labelling.submit_reply(offer.task_id, writer.id, reply_text)).message_id


async def test_red_flags_remove_a_reply_and_its_posts_are_edited(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "reviews", "more"])
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    members = [await emu.create_user(f"member{i}", guild=guild) for i in range(4)]
    async with start_bot(make_settings(red_flags_to_remove=4)) as bot:
        posts_cog = bot.get_cog("Posts")
        reply = await reply_in_review(bot.services.labelling, "Tell me a joke about cats.", "BUY CHEAP WATCHES")
        shown = []
        for name in ("reviews", "more"):
            await (await mod.slash("admin channel set", {"channel": guild.channel(name), "kinds": "review"},
                                   channel=guild.channel("general"))).wait_message()
            ref = await posts_cog.post_next(guild.channel(name).id)
            shown.append(emu.get_message(ref.discord_message_id))
            assert shown[-1].embeds[-1]["description"] == "BUY CHEAP WATCHES"
        # Flags on either post count for the same reply; the fourth removes it.
        for number, member in enumerate(members):
            await member.react(shown[number % 2], "🚩")
        for post in shown:
            await emu.wait_for_edit(post, lambda m: "Removed by moderation" in m.embeds[0]["description"])
            assert post.embeds[-1]["description"] == "*(removed by moderation)*" and not post.custom_ids
        async with bot.services.sessions() as session:
            assert (await session.get(Message, reply)).deleted


async def test_reaction_reviews_off_makes_thumbs_votes_only(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "reviews"])
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    member = await emu.create_user("member", guild=guild)
    async with start_bot(make_settings(posts={"reaction_reviews": False})) as bot:
        sessions = bot.services.sessions
        reply = await reply_in_review(bot.services.labelling, "What is a haiku?", "A three-line Japanese poem.")
        await (await mod.slash("admin channel set", {"channel": guild.channel("reviews"), "kinds": "review"},
                               channel=guild.channel("general"))).wait_message()
        ref = await bot.get_cog("Posts").post_next(guild.channel("reviews").id)
        await member.react(emu.get_message(ref.discord_message_id), "👍")

        async def upvotes() -> int:
            async with sessions() as session:
                return await session.scalar(select(func.count()).select_from(Reaction).where(
                    Reaction.message_id == reply, Reaction.emoji == "+1")) or 0

        assert await eventually(upvotes) == 1
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Label).where(Label.message_id == reply)) == 0

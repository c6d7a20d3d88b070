"""Reactions are counted from what members hold, not per event: a duplicated gateway event counts once, and
1,000 add/remove events in random order on two posts showing the same text leave exactly the votes a fresh
replay of the final reactions gives."""

from __future__ import annotations

import random
from collections import Counter

from sqlalchemy import delete, func, select

from bot.labelling.post_reactions import PostReactions
from bot.labelling.posts import PostService
from storage.enums import TaskKind
from storage.models import PostReaction, Reaction, User

VOTES = {"👍": "+1", "👎": "-1", "🚩": "red_flag"}


async def accepted_prompt(labelling, text: str) -> int:
    """A prompt written and accepted through the engine (its author is not on the server)."""
    author = await labelling.get_or_create_user(900_001)
    offer = await labelling.request_task(author.id, kinds=TaskKind.INITIAL_PROMPT)
    result = await labelling.submit_initial_prompt(offer.task_id, author.id, text)
    for discord_id in (900_002, 900_003):
        reviewer = await labelling.get_or_create_user(discord_id)
        review = await labelling.request_task(reviewer.id, kinds=TaskKind.LABEL_INITIAL_PROMPT)
        await labelling.submit_labels(review.task_id, reviewer.id, {"spam": 0.0})
    return result.message_id


def expected_votes(held: dict[int, set[str]]) -> Counter:
    """The rule: a member's vote is what they hold on any post about the message; 👍 with 👎 cancel."""
    counts: Counter = Counter()
    for emojis in held.values():
        codes = {VOTES[e] for e in emojis}
        if {"+1", "-1"} <= codes:
            codes -= {"+1", "-1"}
        counts.update(codes)
    return counts


async def vote_counts(sessions, message_id: int) -> Counter:
    async with sessions() as session:
        rows = await session.execute(select(Reaction.emoji, func.count()).where(Reaction.message_id == message_id)
                                     .group_by(Reaction.emoji))
        return Counter(dict(rows.all()))


async def held_rows(sessions) -> set[tuple[int, int, str]]:
    async with sessions() as session:
        rows = await session.execute(select(PostReaction.post_id, User.discord_id, PostReaction.emoji)
                                     .join(User, User.id == PostReaction.user_id))
        return {tuple(row) for row in rows}


async def test_duplicates_and_random_replays_leave_the_counts_of_the_final_state(emulator, start_bot, make_settings):
    emu = emulator
    guild = await emu.create_guild("Campaign", channels=["general", "one", "two"])
    mod = await emu.create_user("mod", guild=guild, moderator=True)
    members = [await emu.create_user(f"member{i}", guild=guild) for i in range(12)]
    # Red flags must not remove the prompt here: removal is final, a replay could not undo it.
    settings = make_settings(red_flags_to_remove=100)
    async with start_bot(settings) as bot:
        sessions = bot.services.sessions
        posts_cog = bot.get_cog("Posts")
        prompt = await accepted_prompt(bot.services.labelling, "Name three prime numbers larger than 100.")
        posts = []
        for name in ("one", "two"):
            channel = guild.channel(name)
            await (await mod.slash("admin channel set", {"channel": channel, "kinds": "reply"},
                                   channel=guild.channel("general"))).wait_message()
            ref = await posts_cog.post_next(channel.id)
            posts.append((ref.post_id, emu.get_message(ref.discord_message_id)))
        # Both posts show the prompt as their subject (a text in several posts).
        assert all(post.embeds[1]["description"].startswith("Name three") for _, post in posts)

        # Count what the bot has handled, to know when every event is through.
        reactions = bot.get_cog("PostReactions").reactions
        handled = Counter()
        original = reactions.react

        async def counting(*args, **kwargs):
            try:
                return await original(*args, **kwargs)
            finally:
                handled["events"] += 1

        reactions.react = counting

        def sent() -> int:
            return sum(1 for name in ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE")
                       for event in emu.gateway.events(name) if event.data["user_id"] != str(emu.bot_user.id))

        # The same event delivered twice counts once.
        first = posts[0][1]
        emu.gateway.duplicate_next("MESSAGE_REACTION_ADD")
        await members[0].react(first, "👍")
        await emu.wait_for(lambda: handled["events"] == 2 or None, what="both deliveries handled")
        assert await vote_counts(sessions, prompt) == Counter({"+1": 1})
        await members[0].unreact(first, "👍")
        await emu.wait_for(lambda: handled["events"] == 3 or None, what="the removal handled")
        assert await vote_counts(sessions, prompt) == Counter()

        # 1,000 random adds and removes by 12 members on the two posts.
        rng = random.Random(20261203)
        before = sent()
        for _ in range(1000):
            member = rng.choice(members)
            _, post = rng.choice(posts)
            emoji = rng.choice(list(VOTES))
            if member.id in post.reactions.get(emoji, []):
                await member.unreact(post, emoji)
            else:
                await member.react(post, emoji)
        total = sent()
        assert total - before == 1000
        await emu.wait_for(lambda: handled["events"] >= total + 1 or None, timeout=120,
                           what="every reaction event handled")

        final = {(post_id, user_id, emoji) for post_id, post in posts
                 for emoji, users in post.reactions.items() for user_id in users if user_id != emu.bot_user.id}
        assert await held_rows(sessions) == final
        held: dict[int, set[str]] = {}
        for _, user_id, emoji in final:
            held.setdefault(user_id, set()).add(emoji)
        counted = await vote_counts(sessions, prompt)
        assert counted == expected_votes(held)

    # A fresh replay of only the final reactions, into emptied reaction tables, gives the same counts.
    async with start_bot(settings) as bot:
        sessions = bot.services.sessions
        async with sessions.begin() as session:
            await session.execute(delete(PostReaction))
            await session.execute(delete(Reaction))
        fresh = PostReactions(PostService(bot.services.labelling, bot.settings.posts))
        discord_ids = {post_id: post.id for post_id, post in posts}
        for post_id, user_id, emoji in sorted(final):
            await fresh.react(user_id, discord_ids[post_id], emoji, added=True)
        assert await vote_counts(sessions, prompt) == counted
        assert await held_rows(sessions) == final

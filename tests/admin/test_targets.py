"""What a moderator points at: links, bot post ids and our ids; and the actions' audit rows get the guild."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.admin.actions import Moderator, ModeratorActions
from bot.admin.targets import TargetError, parse_target, resolve_message, resolve_tree
from bot.labelling.service import LabellingService
from storage.models import AuditLog, BotPost, Message, MessageTree, PostMessage, User

POST = 1_300_000_000_000_000_001


@pytest.fixture
async def world(sessions):
    async with sessions.begin() as s:
        user = User(discord_id=7, display_name="writer")
        tree = MessageTree(state="growing", lang="en")
        s.add_all([user, tree])
        await s.flush()
        prompt = Message(tree_id=tree.id, role="prompter", text="p", lang="en", author_id=user.id)
        s.add(prompt)
        await s.flush()
        # A bot post in channel 5 about the prompt (the post-message mapping).
        post = BotPost(discord_message_id=POST, channel_id=5, kind="review", target_message_id=prompt.id,
                       tree_id=tree.id, lang="en")
        s.add(post)
        await s.flush()
        s.add(PostMessage(post_id=post.id, message_id=prompt.id, role="subject"))
        reply = Message(tree_id=tree.id, parent_id=prompt.id, role="assistant", text="r", lang="en", depth=1)
        s.add(reply)
        await s.flush()
        return {"tree": tree.id, "prompt": prompt.id, "reply": reply.id}


@pytest.mark.parametrize("text", [
    f"https://discord.com/channels/1/5/{POST}", f"<https://ptb.discord.com/channels/1/5/{POST}>",
    f"https://discordapp.com/channels/@me/5/{POST}", str(POST), f" {POST} ",
])
async def test_links_and_post_ids_name_the_post(sessions, world, text):
    async with sessions() as s:
        assert (await resolve_message(s, parse_target(text))).id == world["prompt"]
        assert (await resolve_tree(s, parse_target(text))).id == world["tree"]


async def test_our_ids_and_refusals(sessions, world):
    async with sessions() as s:
        assert (await resolve_message(s, parse_target(f"#{world['reply']}"))).id == world["reply"]
        assert (await resolve_tree(s, parse_target(str(world["tree"])))).id == world["tree"]
        # Numbers no column holds: beyond 64 bits, not ASCII digits; beyond our 32-bit row ids no message.
        for text, reason in (("hello", "bad_target"), ("https://example.com/channels/1/2/3", "bad_target"),
                             ("https://discord.com/channels/1/5/42", "not_a_post"), ("4242", "message_not_found"),
                             (f"#{2**64}", "bad_target"), ("١٢", "bad_target"), (f"{2**31}", "message_not_found"),
                             (f"https://discord.com/channels/1/5/{2**64}", "bad_target")):
            with pytest.raises(TargetError) as refused:
                await resolve_message(s, parse_target(text))
            assert refused.value.reason == reason
        for number in ("4242", f"{2**40}"):
            with pytest.raises(TargetError, match="conversation tree"):
                await resolve_tree(s, parse_target(number))


async def test_actions_create_the_moderator_and_stamp_their_guild(sessions, world):
    actions = ModeratorActions(LabellingService(sessions))
    moderator = Moderator(discord_id=99, name="mod", guild_id=555)
    done = await actions.delete(moderator, world["reply"])
    assert done.removed == [world["reply"]] and done.posts == []
    prompt_done = await actions.delete(moderator, world["prompt"])
    assert prompt_done.posts == [(5, POST)]
    async with sessions() as s:
        mod = await s.scalar(select(User).where(User.discord_id == 99))
        rows = (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()
    assert mod.display_name == "mod"
    assert [(r.action, r.actor_id, r.guild_id) for r in rows] == [("delete_message", mod.id, 555)] * 2

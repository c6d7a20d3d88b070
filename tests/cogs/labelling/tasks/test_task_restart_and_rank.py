"""Buttons, selects and the Write box keep working across a restart; the ranking flow's Reset and
Not rankable; long conversations fit Discord's limits."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import Label, Message, Ranking, Task


async def _members(emu, clicker, *names):
    guild = await emu.create_guild("Campaign", channels=["tasks"])
    return [clicker(await emu.create_user(name, guild=guild), guild.channel("tasks")) for name in names]


async def test_a_restart_in_the_middle_keeps_old_components_working(emulator, start_bot, make_settings, clicker):
    alice, bob, carol = await _members(emulator, clicker, "alice", "bob", "carol")
    settings = make_settings()
    async with start_bot(settings):
        done = await alice.write(await alice.task("prompt"), "How do volcanoes form?")
        review = await bob.task("review")
        review = await bob.pick(review, bob.ids(review, "lt:s:label:")[0], ["0"])  # spam: no
        assert review.content == "**Your answers:** spam: no"
        write = await carol.task("prompt")
        opened = await carol.open_modal(write)

    async with start_bot(settings) as bot:
        # bob's picks live in the message: he goes on where he was and confirms.
        flags = bob.ids(review, "lt:s:flags:")[0]
        review = await bob.pick(review, flags, [o["value"] for o in bob.component(review, flags)["options"]
                                                if o["label"] == "Contains personal information (PII)"])
        assert review.content == "**Your answers:** spam: no; Contains personal information (PII)"
        answered = await bob.review(review, scale=2)
        assert answered.embeds[0]["title"] == "Thank you, recorded!"
        # carol's Write box, opened before the restart, is taken after it.
        done_carol = await carol.send_modal(opened, write, "What makes a cat purr?")
        assert done_carol.embeds[0]["title"] == "Thank you, recorded!"
        # alice's "Next task" from before the restart asks for another prompt.
        again = await alice.click(done, "lt:next:prompt:en")
        assert again.embeds[0]["title"] == "Write a prompt"
        async with bot.services.sessions() as session:
            labels = dict((await session.execute(select(Label.name, Label.value))).all())
            assert labels["spam"] == 0.0 and labels["pii"] == 1.0 and labels["hate_speech"] == 0.0
            assert labels["quality"] == 0.25 and len(labels) == 11
            texts = (await session.scalars(select(Message.text).order_by(Message.id))).all()
            assert texts == ["How do volcanoes form?", "What makes a cat purr?"]


async def test_ranking_select_flow_reset_and_not_rankable(emulator, start_bot, make_settings, clicker):
    names = ["alice", "bob", "carol", "dave", "erin", "frank"]
    alice, bob, carol, dave, erin, frank = await _members(emulator, clicker, *names)
    # Three replies to rank; the tree goes to ranking once they are accepted.
    settings = make_settings(max_children=3, max_tree_depth=1, goal_tree_size=4, rankings_needed=2)
    async with start_bot(settings) as bot:
        await alice.write(await alice.task("prompt"), "Name a good first programming language.")
        for reviewer in (bob, carol):
            await reviewer.review(await reviewer.task("review"))
        for writer, text in ((dave, "Python: readable and everywhere."), (erin, "Scratch, for children."),
                             (frank, "Assembly, to learn how computers work.")):
            await writer.write(await writer.task("assistant_reply"), text)
        for reviewer in (bob, carol):
            for _ in range(3):
                await reviewer.review(await reviewer.task("review"))

        task = await alice.task("rank")
        letters = {text.split(":")[0].split(",")[0]: letter for letter, text in alice.reply_letters(task).items()}
        assert sorted(letters.values()) == ["A", "B", "C"]
        assert task.content == "**Your order:** nothing picked yet; start with the best reply."
        assert alice.component(task, alice.ids(task, "lt:b:rankok:")[0]).get("disabled")
        task = await alice.pick(task, alice.ids(task, "lt:s:rank:")[0], [letters["Assembly"]])
        assert task.content == f"**Your order:** 1. Reply {letters['Assembly']}"
        task = await alice.click(task, alice.ids(task, "lt:b:reset:")[0])
        assert task.content.startswith("**Your order:** nothing picked yet")
        task = await alice.pick(task, alice.ids(task, "lt:s:rank:")[0], [letters["Python"]])
        # Skip, then back: the order picked so far is still there.
        panel = await alice.click(task, alice.ids(task, "lt:b:skip:")[0])
        task = await alice.click(panel, alice.ids(panel, "lt:b:back:")[0])
        assert task.content == f"**Your order:** 1. Reply {letters['Python']}"
        options = [o["value"] for o in alice.component(task, alice.ids(task, "lt:s:rank:")[0])["options"]]
        assert sorted(options) == sorted([letters["Scratch"], letters["Assembly"]])
        task = await alice.pick(task, alice.ids(task, "lt:s:rank:")[0], [letters["Scratch"]])
        # The last reply takes the last place by itself; the order is shown before confirming.
        assert task.content == ("**Your order:** " + " > ".join(
            f"{n}. Reply {letters[w]}" for n, w in ((1, "Python"), (2, "Scratch"), (3, "Assembly"))))
        assert alice.ids(task, "lt:s:rank:") == []
        done = await alice.click(task, alice.ids(task, "lt:b:rankok:")[0])
        assert "1 of 2 rankings of these replies are in." in done.embeds[0]["description"]

        task = await bob.task("rank")
        done = await bob.click(task, bob.ids(task, "lt:b:notrank:")[0])
        assert done.embeds[0]["title"] == "Thank you, recorded!"
        async with bot.services.sessions() as session:
            rankings = (await session.scalars(select(Ranking).order_by(Ranking.id))).all()
            texts = dict((await session.execute(select(Message.id, Message.text))).all())
            assert [texts[i].split(":")[0].split(",")[0] for i in rankings[0].ordered_ids] == [
                "Python", "Scratch", "Assembly"]
            assert rankings[1].not_rankable and rankings[1].ordered_ids == []


async def test_long_texts_are_folded_within_discords_limits_and_attached_in_full(
    emulator, start_bot, make_settings, clicker
):
    alice, bob, carol, dave = await _members(emulator, clicker, "alice", "bob", "carol", "dave")
    long_prompt = "Tell me about rivers. " + "Rivers carve valleys over time. " * 60
    long_reply = "Rivers start in mountains. " + "They flow downhill to the sea. " * 120
    async with start_bot(make_settings(max_text_length=4000)) as bot:
        await alice.write(await alice.task("prompt"), long_prompt)
        for reviewer in (bob, carol):
            await reviewer.review(await reviewer.task("review"))
        await dave.write(await dave.task("assistant_reply"), long_reply)
        review = await bob.task("review")
        embeds = review.embeds
        assert len(embeds) == 3 and sum(len(e.get("title", "")) + len(e.get("description", "")) + len(
            e.get("footer", {}).get("text", "")) for e in embeds) <= 6000
        assert "shortened" in embeds[2]["description"] and embeds[2]["description"].startswith("Rivers start")
        assert "attached file holds them in full" in embeds[0]["description"]
        full = review.attachments[0].data.decode()
        assert long_prompt.strip() in full and long_reply.strip() in full
        async with bot.services.sessions() as session:
            assert await session.scalar(select(Task.kind).where(Task.id == int(review.custom_ids[-1].split(":")[3]))) \
                == "label_assistant_reply"

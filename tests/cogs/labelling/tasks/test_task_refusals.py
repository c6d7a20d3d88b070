"""Every refusal a member can meet through /task: they see why, the database is unchanged, and a text
they wrote comes back to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.labelling.errors import NoTaskAvailable, TaskRefused
from cogs.command_errors import STALE_COMPONENT
from cogs.labelling.task_cog import STALE
from storage.models import Label, Task, User


async def _setup(emu, clicker, *names):
    guild = await emu.create_guild("Campaign", channels=["tasks"])
    return [clicker(await emu.create_user(name, guild=guild), guild.channel("tasks")) for name in names]


async def _user_id(sessions, clicker) -> int:
    async with sessions() as session:
        return await session.scalar(select(User.id).where(User.discord_id == clicker.user.id))


async def test_refused_texts_come_back_and_change_nothing(emulator, start_bot, make_settings, clicker, dump):
    alice, = await _setup(emulator, clicker, "alice")
    async with start_bot(make_settings()) as bot:
        sessions = bot.services.sessions
        first = await alice.task("prompt")
        await alice.write(first, "How do volcanoes form?")

        # Blank text: Discord lets spaces through the box; the engine refuses, the text comes back.
        task = await alice.task("prompt")
        before = await dump(sessions)
        note = await alice.write(task, "   ")
        assert note.ephemeral and note.embeds[0]["title"] == "Your text (not recorded)"
        assert note.embeds[0]["description"].startswith(TaskRefused("empty_text").message)
        assert alice.ids(note, "lt:b:again:") and await dump(sessions) == before

        # The same text again: refused, given back, and "Write again" opens the box with it.
        note = await alice.write(task, "How do volcanoes form?")
        assert TaskRefused("duplicate_text").message in note.embeds[0]["description"]
        assert "```\nHow do volcanoes form?\n```" in note.embeds[0]["description"]
        assert await dump(sessions) == before
        again = await alice.open_modal(note, "lt:b:again:")
        assert again.modal_inputs()[0]["value"] == "How do volcanoes form?"
        done = await alice.send_modal(again, note, "Why do some volcanoes explode and others not?")
        assert done.embeds[0]["title"] == "Thank you, recorded!"
        async with sessions() as session:
            assert (await session.get(Task, int(task.custom_ids[0].split(":")[3]))).state == "done"


async def test_a_text_longer_than_allowed_after_a_restart_comes_back_as_a_file(
    emulator, start_bot, make_settings, clicker, dump
):
    alice, = await _setup(emulator, clicker, "alice")
    text = "A question with ``` fences, 40 chars!!"
    async with start_bot(make_settings()):
        task = await alice.task("prompt")
        opened = await alice.open_modal(task)
        assert opened.modal_inputs()[0]["max_length"] == 2000
    # The limit shrinks while the member is typing: the modal from before the restart still submits.
    async with start_bot(make_settings(max_text_length=20)) as bot:
        before = await dump(bot.services.sessions)
        note = await alice.send_modal(opened, task, text)
        assert "The text is 38 characters long; the limit is 20." in note.embeds[0]["description"]
        assert note.attachments[0].filename == "your-text.txt" and note.attachments[0].data.decode() == text
        assert await dump(bot.services.sessions) == before
        # A new box enforces the new limit itself.
        assert (await alice.open_modal(note, "lt:b:again:")).modal_inputs()[0]["max_length"] == 20


async def test_components_of_a_task_that_is_not_open_change_nothing(
    emulator, start_bot, make_settings, clicker, dump
):
    alice, bob, carol = await _setup(emulator, clicker, "alice", "bob", "carol")
    async with start_bot(make_settings()) as bot:
        sessions, service = bot.services.sessions, bot.services.labelling
        await alice.write(await alice.task("prompt"), "How do volcanoes form?")
        review = await bob.task("review")
        task_id = int(bob.ids(review, "lt:b:confirm:")[0].split(":")[3])
        spam = bob.ids(review, "lt:s:label:")[0]
        before = await dump(sessions)

        async def refused(clicker, message, custom_id, expected, *, values=None):
            if values is None:
                answer = await clicker.click(message, custom_id)
            else:
                answer = await clicker.pick(message, custom_id, values)
            assert answer.ephemeral and answer.content == expected, answer.content
            assert await dump(sessions) == before

        # Confirm before the required spam question is answered.
        await refused(bob, review, bob.ids(review, "lt:b:confirm:")[0], "The spam label is required.")
        # Someone else's task, a task that does not exist, a damaged state, an id of ours no version knows.
        confirm = f"lt:b:confirm:{task_id}:0.4" + "-" * 10
        await refused(carol, carol.forged(confirm), confirm, TaskRefused("not_your_task").message)
        await refused(carol, carol.forged(spam, select_values=["0"]), spam, TaskRefused("not_your_task").message,
                      values=["0"])
        await refused(carol, carol.forged("lt:b:confirm:999:0.4"), "lt:b:confirm:999:0.4",
                      TaskRefused("task_not_found").message)
        await refused(bob, bob.forged(f"lt:b:page:{task_id}:9.zz"), f"lt:b:page:{task_id}:9.zz", STALE)
        forged_select = f"lt:s:label:{task_id}:0.-:0"
        await refused(bob, bob.forged(forged_select, select_values=["0"]), forged_select, STALE, values=["0"])
        # Ids no template takes: letters, a minus sign, beyond 64 bits (the database could not bind it).
        for unclaimed in ("lt:b:launch:rockets", f"lt:b:confirm:-{task_id}:0.4", f"lt:b:confirm:{2**64}:0.4"):
            await refused(bob, bob.forged(unclaimed), unclaimed, STALE_COMPONENT)

        # Expired.
        async with sessions.begin() as session:
            await session.execute(update(Task).where(Task.id == task_id)
                                  .values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        before = await dump(sessions)
        await refused(bob, review, spam, TaskRefused("task_expired").message, values=["0"])
        await refused(bob, review, bob.ids(review, "lt:b:skip:")[0], TaskRefused("task_expired").message)

        # Withdrawn: a moderator halts the tree.
        review = await carol.task("review")
        await service.halt_tree(None, (await carol_tree(sessions, review)), "off topic")
        before = await dump(sessions)
        await refused(carol, review, carol.ids(review, "lt:s:label:")[0], TaskRefused("task_cancelled").message,
                      values=["0"])

        # Banned: the old task and a new one are refused as such.
        await service.resume_tree(None, await carol_tree(sessions, review))
        review = await carol.task("review")
        await service.ban_user(None, await _user_id(sessions, carol))
        before = await dump(sessions)
        await refused(carol, review, carol.ids(review, "lt:s:label:")[0], TaskRefused("banned").message,
                      values=["0"])
        assert (await carol.task("review")).content == NoTaskAvailable("banned").message
        assert await dump(sessions) == before


async def carol_tree(sessions, review) -> int:
    task_id = int(review.custom_ids[-1].split(":")[3])
    async with sessions() as session:
        return (await session.get(Task, task_id)).tree_id


async def test_a_double_click_records_once(emulator, start_bot, make_settings, clicker):
    alice, bob = await _setup(emulator, clicker, "alice", "bob")
    async with start_bot(make_settings()) as bot:
        await alice.write(await alice.task("prompt"), "How do volcanoes form?")
        review = await bob.task("review")
        await bob.pick(review, bob.ids(review, "lt:s:label:")[0], ["0"])
        confirm = bob.ids(review, "lt:b:confirm:")[0]
        first = await bob.user.click(review, confirm)
        second = await bob.user.click(review, confirm)
        answers = [await bob._wait(it, review, 0) for it in (first, second)]
        notes = [a.content for a in answers if a is not review]
        assert notes == [TaskRefused("already_done").message]
        async with bot.services.sessions() as session:
            assert len((await session.scalars(select(Label).where(Label.name == "spam"))).all()) == 1


async def test_no_task_refusals(emulator, start_bot, make_settings, clicker, dump):
    alice, bob = await _setup(emulator, clicker, "alice", "bob")
    async with start_bot(make_settings(max_pending_tasks_per_user=2, task_requests_per_window=4)) as bot:
        sessions = bot.services.sessions

        async def refused(clicker, kind, expected, **options):
            before = await dump(sessions)
            answer = await clicker.task(kind, **options)
            assert answer.content.startswith(expected), answer.content
            assert await dump(sessions) == before

        await refused(alice, "rank", NoTaskAvailable("no_work").message)
        await refused(alice, "prompt", "That is not a language tag", language="not a tag")
        await alice.write(await alice.task("prompt"), "How do volcanoes form?")
        # Her own prompt is the only one to review: she cannot review it.
        await refused(alice, "review", NoTaskAvailable("no_work").message)
        await alice.task("prompt")
        await alice.task("prompt")
        await refused(alice, "prompt", NoTaskAvailable("too_many_pending").message)
        # bob asks too often: skipping keeps his open tasks down, but every request counts.
        for number in range(4):
            task = await bob.task("prompt")
            panel = await bob.click(task, bob.ids(task, "lt:b:skip:")[0])
            assert panel.content.startswith("Skip this task?")
            if number == 0:
                skipped = await bob.pick(panel, bob.ids(panel, "lt:s:skipwhy:")[0], ["not_my_topic"])
            else:
                skipped = await bob.click(panel, bob.ids(panel, "lt:b:skipnow:")[0])
            assert skipped.embeds[0]["title"] == "Task skipped"
        await refused(bob, "review", NoTaskAvailable("rate_limited").message)
        assert "You can try again <t:" in (await bob.task("review")).content
        async with sessions() as session:
            reasons = (await session.scalars(select(Task.payload).where(Task.state == "skipped"))).all()
            assert [p.get("skip_reason") for p in reasons] == ["not_my_topic", None, None, None]

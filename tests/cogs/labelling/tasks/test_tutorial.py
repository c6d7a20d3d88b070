"""/tutorial walks through every kind of task with the real task components, recording nothing."""

from __future__ import annotations


async def test_tutorial_pages_show_every_kind_with_the_real_components(
    emulator, start_bot, make_settings, clicker, dump
):
    guild = await emulator.create_guild("Campaign", channels=["tasks"])
    alice = clicker(await emulator.create_user("alice", guild=guild), guild.channel("tasks"))
    async with start_bot(make_settings()) as bot:
        before = await dump(bot.services.sessions)
        answer = await alice.user.slash("tutorial", channel=guild.channel("tasks"))
        page = (await answer.wait_response()).message
        assert page.ephemeral and page.embeds[0]["title"] == "Tutorial 1/6: How labelling works"
        seen = {}
        while True:
            title = page.embeds[0]["title"]
            # The message changes in place: keep what this page showed.
            seen[title.split(": ", 1)[1]] = (list(page.embeds), list(page.custom_ids))
            task_ids = [cid for cid in page.custom_ids if cid.startswith("lt:")]
            assert all(alice.component(page, cid).get("disabled") for cid in task_ids)
            following = [cid for cid in page.custom_ids if cid.startswith("tut:")
                         and alice.component(page, cid)["label"].startswith("Next")]
            if not following:
                break
            page = await alice.click(page, following[0])
        assert list(seen) == ["How labelling works", "Write a prompt", "Reply as the assistant",
                              "Reply as the user", "Review a message", "Rank replies"]
        for name in list(seen)[1:]:
            description = seen[name][0][0]["description"]
            assert "✅ Good" in description and "❌ Bad" in description
        # The example tasks are rendered as real tasks are.
        embeds, custom_ids = seen["Write a prompt"]
        assert embeds[1]["title"] == "Write a prompt" and "lt:b:write:0:p" in custom_ids
        embeds, custom_ids = seen["Review a message"]
        assert [e["title"] for e in embeds[1:]] == [
            "Review an assistant reply", "User", "Assistant · the message to review"]
        assert len([c for c in custom_ids if c.startswith("lt:s:")]) == 3
        assert [e["title"] for e in seen["Rank replies"][0][-3:]] == [
            "Reply A (Assistant)", "Reply B (Assistant)", "Reply C (Assistant)"]
        back = [cid for cid in page.custom_ids if cid.startswith("tut:")][0]
        page = await alice.click(page, back)
        assert page.embeds[0]["title"] == "Tutorial 5/6: Review a message"
        assert await dump(bot.services.sessions) == before

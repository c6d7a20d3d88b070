"""The acceptance scenario: `python -m emulator` in its own process, a discord.py bot pointed at it by the two
URLs it prints, and everything driven and observed over the HTTP control API."""

from __future__ import annotations

import asyncio

import aiohttp

from emulator.testing import run_client, standalone


class Control:
    """Just enough HTTP to drive the control API, as a tool in any language would."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: dict | None = None, status: int = 200):
        async with self.session.request(method, self.base + path, json=body) as resp:
            data = await resp.json()
            assert resp.status == status, (resp.status, data)
            return data


async def test_standalone_emulator_driven_over_the_control_api(sample_bot):
    async with standalone("--guild", "Playground") as emu, aiohttp.ClientSession() as session:
        assert emu.rest_url.endswith("/api/v10") and emu.gateway_url.startswith("ws://")
        api = Control(session, emu.control_url)
        info = await api.call("GET", "")
        assert info["token"] == emu.token and info["connected"] is False
        guild_id, channel_id = emu.extra["guild_id"], emu.extra["channel_id"]

        async with run_client(sample_bot, emu):
            alice = await api.call("POST", "/users", {"name": "alice", "guild_id": guild_id})

            # A DM, answered.
            sent = await api.call("POST", f"/users/{alice['id']}/dm", {"content": "hi bot"})
            reply = await api.call("POST", "/wait/message", {"user_id": alice["id"], "after_id": sent["id"]})
            assert reply["content"] == "you said: hi bot"

            # The bot registered its slash commands; one answers with buttons.
            assert "vote" in {c["name"] for c in await api.call("GET", "/commands")}
            it = await api.call("POST", f"/users/{alice['id']}/slash",
                                {"name": "vote", "options": {"topic": "lunch"}, "channel_id": channel_id})
            it = await api.call("GET", f"/interactions/{it['id']}?wait=5")
            message = it["response"]["message"]
            assert message["content"] == "Vote: lunch"
            buttons = [c["custom_id"] for row in message["components"] for c in row["components"]]
            assert "vote:yes" in buttons

            # A select menu answered ephemerally, and a modal opened by a button and submitted.
            pick = await api.call("POST", f"/users/{alice['id']}/select",
                                  {"message_id": message["id"], "custom_id": "vote:colors", "values": ["green"]})
            pick = await api.call("GET", f"/interactions/{pick['id']}?wait=5")
            assert pick["response"]["ephemeral"] and pick["response"]["message"]["content"] == "picked green"
            opened = await api.call("POST", f"/users/{alice['id']}/click",
                                    {"message_id": message["id"], "custom_id": "vote:feedback"})
            opened = await api.call("GET", f"/interactions/{opened['id']}?wait=5")
            assert opened["response"]["kind"] == "modal" and opened["response"]["modal"]["title"] == "Feedback"
            submitted = await api.call("POST", f"/users/{alice['id']}/modal",
                                       {"interaction_id": opened["id"], "values": {"feedback:text": "nice"}})
            submitted = await api.call("GET", f"/interactions/{submitted['id']}?wait=5&for=message")
            assert submitted["original"]["content"] == "thanks: nice"

            # The click reaches the bot, which updates the message.
            click = await api.call("POST", f"/users/{alice['id']}/click",
                                   {"message_id": message["id"], "custom_id": "vote:yes"})
            click = await api.call("GET", f"/interactions/{click['id']}?wait=5")
            assert click["response"]["kind"] == "update"
            updated = await api.call("GET", f"/messages/{message['id']}")
            assert updated["content"] == "alice voted yes" and updated["edits"] == ["alice voted yes"]

            # A reaction by the user reaches the bot's raw listener.
            await api.call("POST", f"/users/{alice['id']}/react", {"message_id": reply["id"], "emoji": "👍"})
            await wait_until(lambda: ("add", int(alice["id"]), "👍") in sample_bot.reaction_events)

            # A dropped gateway connection is resumed; the next DM is still answered once.
            assert (await api.call("POST", "/gateway/drop"))["dropped"] == 1
            sent = await api.call("POST", f"/users/{alice['id']}/dm", {"content": "still there?"})
            reply = await api.call("POST", "/wait/message", {"user_id": alice["id"], "after_id": sent["id"]})
            assert reply["content"] == "you said: still there?"
            events = await api.call("GET", "/events?name=RESUMED")
            assert len(events) == 1

            # Errors are reported as JSON, with a useful status.
            missing = await api.call("POST", f"/users/{alice['id']}/slash", {"name": "nope"}, status=400)
            assert "nope" in missing["error"]
            timeout = await api.call("POST", "/wait/message",
                                     {"user_id": alice["id"], "content_equals": "never", "timeout": 0.05},
                                     status=408)
            assert "timed out" in timeout["error"]

        calls = await api.call("GET", "/calls?route=PUT%20/applications/{application_id}/commands")
        assert [c["status"] for c in calls] == [200]
        assert await api.call("GET", "/unknown_routes") == []


async def wait_until(check, limit: float = 5.0) -> None:
    """Poll the bot's own state (it lives in this process, the emulator does not see it)."""
    for _ in range(int(limit / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_standalone_accepts_a_given_token_and_refuses_others():
    async with standalone("--token", "my-bot-token", "--bot-name", "Helper") as emu, \
            aiohttp.ClientSession() as session:
        assert emu.token == "my-bot-token"
        async with session.get(f"{emu.rest_url}/users/@me", headers={"Authorization": "Bot my-bot-token"}) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            assert (await r.json())["username"] == "Helper"
        async with session.get(f"{emu.rest_url}/users/@me", headers={"Authorization": "Bot wrong"}) as r:
            assert r.status == 401 and await r.json() == {"message": "401: Unauthorized", "code": 0}
        async with session.get(f"{emu.rest_url}/no/such/route", headers={"Authorization": "Bot my-bot-token"}) as r:
            assert r.status == 404 and await r.json() == {"message": "404: Not Found", "code": 0}
        async with session.get(f"{emu.control_url}/unknown_routes") as r:
            assert await r.json() == ["GET /no/such/route"]

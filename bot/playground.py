"""`oabot playground`: the Discord emulator and the bot in one process, with a seeded guild and a web client.

The bot runs through the same `serve()` as `oabot run`; only its Discord is the emulator on loopback.
The guild, its channels and its members keep the same ids at every start, so the people in the
database stay the same people when the playground is started again on the same file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bot.config import LabellingSettings, Settings
from bot.labelling.service import LabellingService
from storage import db
from storage.enums import TaskKind
from storage.models import MessageTree

log = logging.getLogger(__name__)

PLAYGROUND_TOKEN = "playground"
GUILD_NAME = "Playground"
CHANNELS = ("tasks", "general")
MODERATOR = "mod"
MEMBERS = ("alice", "bob", "carol", "dave")
# Fixed snowflakes (early 2026) for the guild, channels and people; the emulator's own ids are later.
_BASE_ID = 1_459_000_000_000_000_000
GUILD_ID = _BASE_ID
CHANNEL_IDS = {name: _BASE_ID + 10 + i for i, name in enumerate(CHANNELS)}
USER_IDS = {name: _BASE_ID + 100 + i for i, name in enumerate((MODERATOR, *MEMBERS))}
TASK_POST_MINUTES = 10
# The first task post comes soon after start, not after the production delay.
FIRST_POST_SECONDS = 3
# Authors of the demo trees: database users only (not in the guild), kept off the leaderboard.
DEMO_AUTHORS = {f"demo-{name}": 9_000_000 + i for i, name in enumerate(("ann", "ben", "cat", "dan", "eve"))}


class PlaygroundError(Exception):
    """The playground cannot start (its port is taken...): one line for the user."""


@dataclass
class World:
    guild_id: int
    channel_ids: dict[str, int]
    user_ids: dict[str, int]


async def build_world(emu) -> World:  # noqa: ANN001 (emulator.Emulator; imported lazily with the emulator)
    """The guild: #tasks and #general, a moderator and four members."""
    guild = await emu.create_guild(GUILD_NAME, channels=(), id=GUILD_ID)
    for name in CHANNELS:
        await emu.create_channel(guild, name, id=CHANNEL_IDS[name],
                                 topic="Take labelling tasks here with /task" if name == "tasks" else None)
    for name, user_id in USER_IDS.items():
        await emu.create_user(name, guild=guild, moderator=name == MODERATOR, id=user_id,
                              global_name=name.capitalize() if name != MODERATOR else "Mod")
    return World(guild.id, dict(CHANNEL_IDS), dict(USER_IDS))


# ---- demo data --------------------------------------------------------------------------------------------

PROMPTS = {
    "ranking": "Explain photosynthesis to a ten-year-old.",
    "growing": "What are good habits for learning a new language as an adult?",
    "review": "Write a haiku about autumn rain.",
}
REPLIES = {
    "ranking": (
        "Plants are like little chefs: they take sunlight, water and air and cook their own food, sugar. "
        "The leftover they breathe out is the oxygen we breathe in.",
        "Photosynthesis is how plants make food. Leaves catch sunlight with a green stuff called chlorophyll "
        "and use it to turn water and carbon dioxide into sugar and oxygen.",
    ),
    "accepted": "Practise a little every day, speak from the first week even with mistakes, and learn whole "
                "phrases rather than single words. Spaced-repetition flashcards help the words stick.",
    "pending": "Watch series with subtitles in the language, then without them.",
}


class _Demo:
    """Drives demo authors through the engine's own task loop, as members would through /task."""

    def __init__(self, service: LabellingService, users: dict[str, int]) -> None:
        self.service, self.users = service, users

    async def write(self, who: str, kind: TaskKind, text: str) -> int | None:
        offer = await self.service.request_task(self.users[who], kinds=kind)
        if kind == TaskKind.INITIAL_PROMPT:
            result = await self.service.submit_initial_prompt(offer.task_id, self.users[who], text)
        else:
            result = await self.service.submit_reply(offer.task_id, self.users[who], text)
        return result.message_id

    async def review(self, who: str, kind: TaskKind) -> None:
        """A favourable review: not spam, good quality, no flags."""
        offer = await self.service.request_task(self.users[who], kinds=kind)
        labels = {spec.name: (0.75 if spec.kind == "likert" else 0.0) for spec in offer.labels}
        await self.service.submit_labels(offer.task_id, self.users[who], labels)


async def seed_demo(sessions, settings: LabellingSettings) -> bool:  # noqa: ANN001 (async_sessionmaker)
    """A few trees in different states so every task kind has work at once: one in ranking, one growing
    (a reply accepted, one awaiting review) and a prompt awaiting review. Does nothing if the database
    already holds trees (a playground started again on its file); returns whether it seeded."""
    async with sessions() as session:
        if await session.scalar(select(func.count()).select_from(MessageTree)):
            return False
    users = {}
    plain = LabellingService(sessions, settings)
    for name, discord_id in DEMO_AUTHORS.items():
        users[name] = (await plain.get_or_create_user(discord_id, display_name=name, synthetic=True)).id
    ann, ben, cat, dan, eve = DEMO_AUTHORS
    # The first tree stops growing at three messages, so it is ready to rank at once.
    short = _Demo(LabellingService(sessions, settings.model_copy(update={"goal_tree_size": 3})), users)
    await short.write(ann, TaskKind.INITIAL_PROMPT, PROMPTS["ranking"])
    for reviewer in (ben, cat, dan):
        await short.review(reviewer, TaskKind.LABEL_INITIAL_PROMPT)
    for writer, text in zip((ben, cat), REPLIES["ranking"], strict=True):
        await short.write(writer, TaskKind.ASSISTANT_REPLY, text)
    for reviewer in (ann, dan, eve):
        for _ in REPLIES["ranking"]:
            await short.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)

    demo = _Demo(plain, users)
    await demo.write(ann, TaskKind.INITIAL_PROMPT, PROMPTS["growing"])
    for reviewer in (ben, cat, dan):
        await demo.review(reviewer, TaskKind.LABEL_INITIAL_PROMPT)
    await demo.write(dan, TaskKind.ASSISTANT_REPLY, REPLIES["accepted"])
    for reviewer in (ann, ben, cat):
        await demo.review(reviewer, TaskKind.LABEL_ASSISTANT_REPLY)
    await demo.write(eve, TaskKind.ASSISTANT_REPLY, REPLIES["pending"])
    await demo.write(ann, TaskKind.INITIAL_PROMPT, PROMPTS["review"])
    return True


async def set_task_channel(sessions, settings: Settings) -> None:  # noqa: ANN001 (async_sessionmaker)
    """#tasks gets task posts (reviews and rankings, so reactions on them are votes), as the moderator's
    `/admin channel set` would do; a channel already set up keeps its settings."""
    from bot.labelling.context import Context
    from bot.labelling.post_channels import PostChannels

    channels = PostChannels(sessions, Context(settings.labelling), settings.posts)
    if await channels.get(CHANNEL_IDS["tasks"]) is None:
        await channels.set(GUILD_ID, CHANNEL_IDS["tasks"], interval_minutes=TASK_POST_MINUTES, kinds="review,rank",
                           language=None, actor_discord_id=USER_IDS[MODERATOR], actor_name=MODERATOR)


async def prepare_database(settings: Settings, *, demo: bool) -> bool:
    """Migrate the playground's database, set up #tasks and, with `demo`, seed it; returns whether it seeded."""
    engine = db.create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout_seconds)
    try:
        await db.upgrade(engine)
        sessions = db.session_factory(engine)
        await set_task_channel(sessions, settings)
        return await seed_demo(sessions, settings.labelling) if demo else False
    finally:
        await engine.dispose()


# ---- running ----------------------------------------------------------------------------------------------

def playground_settings(settings: Settings, emu, database: Path) -> Settings:  # noqa: ANN001
    discord = settings.discord.model_copy(update={
        "token": emu.token, "api_base_url": emu.rest_url, "gateway_url": emu.gateway_url,
    })
    database_settings = settings.database.model_copy(update={"url": f"sqlite+aiosqlite:///{database}"})
    posts = settings.posts.model_copy(update={
        "first_post_delay_seconds": min(settings.posts.first_post_delay_seconds, FIRST_POST_SECONDS)})
    return settings.model_copy(update={"discord": discord, "database": database_settings, "posts": posts})


async def run_playground(settings: Settings, *, host: str, port: int, database: Path, demo: bool,
                         announce: Callable[[str], None]) -> None:
    """Start the emulator, seed it, run the bot until Ctrl-C (SIGINT) or SIGTERM, then stop everything."""
    from bot.app import serve
    from emulator import Emulator

    emu = Emulator(token=PLAYGROUND_TOKEN, bot_name="oabot", history_limit=2000)
    try:
        await emu.start(host, port)
    except OSError as exc:
        raise PlaygroundError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                              "pick another port with --port") from None
    try:
        await build_world(emu)
        settings = playground_settings(settings, emu, database)
        seeded = await prepare_database(settings, demo=demo)
        if seeded:
            log.info("seeded demo trees into %s", database)
        announce(emu.web_url)
        await serve(settings)
    finally:
        await emu.stop()


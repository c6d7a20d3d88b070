"""The Bot subclass: the composition root that wires settings, storage, services and cogs."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections import OrderedDict
from typing import Any

import discord
import yarl
from discord.ext import commands
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import jobs
from bot.chat.service import ChatService
from bot.chat.synthetic import SyntheticReplier
from bot.config import ChatSettings, Settings
from bot.labelling.service import LabellingService
from bot.services import Services
from cogs.command_errors import PoliteCommandTree, answer_failure, answer_unclaimed_component
from model_runner import (
    CHAT_DISABLED_MESSAGE,
    ChatRunner,
    OpenAICompatRunner,
    build_runner,
    preset,
    resolve_model_path,
)
from model_runner.reloadable import ReloadableRunner
from storage import db, leases

log = logging.getLogger(__name__)
# Interaction ids remembered to drop a replayed INTERACTION_CREATE (a resume re-sends at most this many events).
SEEN_INTERACTIONS = 10_000


def point_discord_at(api_base_url: str, gateway_url: str) -> None:
    """Send REST and gateway traffic to the configured Discord (or a compatible server)."""
    discord.http.Route.BASE = api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def bot_intents() -> discord.Intents:
    # Only what the cogs use: guild structure, DMs for chat, reactions as votes, guild messages for
    # mentions. No privileged intents: DM and mention content reaches bots without message_content.
    intents = discord.Intents.none()
    intents.guilds = True
    intents.dm_messages = True
    intents.dm_reactions = True
    intents.guild_messages = True
    intents.guild_reactions = True
    return intents


def preflight_model(settings: ChatSettings) -> None:
    """Fail before connecting when a configured model file is missing or is not GGUF, or when the
    configured OpenAI-compatible server does not answer (or refuses the key)."""
    if not settings.enabled:
        return
    if settings.backend == "llama_cpp":
        resolve_model_path(settings.model_path)
        return
    runner = OpenAICompatRunner(settings.openai_base_url, model=settings.openai_model,
                                api_key=settings.openai_api_key)

    async def check() -> None:
        await runner.start()
        await runner.close()

    asyncio.run(check())


async def start_chat(
    settings: ChatSettings, sessions: async_sessionmaker[AsyncSession]
) -> tuple[ChatService | None, ChatRunner | None, str | None]:
    """The chat service and its started runner, or (None, None, why chat is off)."""
    if not settings.enabled:
        return None, None, "Chat is switched off on this bot ([chat] enabled = false in its settings)."

    def build() -> ChatRunner | None:
        return build_runner(
            model_path=settings.model_path,
            openai_base_url=settings.openai_base_url if settings.backend == "openai" else None,
            openai_model=settings.openai_model,
            openai_api_key=settings.openai_api_key,
            n_ctx=settings.context_size,
            n_threads=settings.threads,
            n_parallel=settings.parallel,
            state_cache_bytes=settings.state_cache_mb << 20,
        )

    built = build()
    if built is None:
        log.warning(CHAT_DISABLED_MESSAGE)
        return None, None, CHAT_DISABLED_MESSAGE
    if settings.backend == "llama_cpp" and settings.model_path is None and "preset" not in settings.model_fields_set:
        # The bundled SmolLM2-135M is tiny: at low temperature it answered 23 of 24 simple questions
        # right (3 questions x 8 seeds), at k50's 0.75 only 15. An operator's preset still wins.
        settings = settings.model_copy(update={"preset": "k50-precise"})
        log.info("using the bundled SmolLM2 model with the k50-precise preset")
    # Counts what the model serves and lets moderators load a replaced model file (/admin model reload).
    runner = ReloadableRunner(built, build)
    await runner.start()
    log.info("chat model %s ready (%s)", runner.model_name, type(built).__name__)
    return ChatService(sessions, settings, runner), runner, None


class OABot(commands.AutoShardedBot):
    """Runs the shards ``[discord] shard_ids`` of ``shard_count`` (all of them when unset)."""

    def __init__(self, settings: Settings) -> None:
        # The bot never joins voice: discord.py's warnings about missing voice libraries are noise.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            owner_ids=set(settings.discord.owner_ids) or None,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=PoliteCommandTree,
            shard_count=settings.discord.shard_count,
            shard_ids=settings.discord.shard_ids,
        )
        self.settings = settings
        # The DynamicItem classes the cogs registered: a component none of them claims is answered here.
        self.component_items: set[type[discord.ui.DynamicItem[Any]]] = set()
        self.services: Services | None = None
        self.jobs: jobs.Jobs | None = None
        self._shutdown: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        settings = self.settings
        busy_timeout = settings.database.busy_timeout_seconds
        engine = db.create_engine(settings.database.url, echo=settings.database.echo, busy_timeout=busy_timeout)
        await db.upgrade(engine)
        sessions = db.session_factory(engine, busy_timeout=busy_timeout)
        labelling = LabellingService(sessions, settings.labelling)
        chat, runner, unavailable = await start_chat(settings.chat, sessions)
        synthetic = None
        if runner is not None and settings.chat.synthetic_replies:
            synthetic = SyntheticReplier(
                labelling, runner, system_prompt=settings.chat.system_prompt,
                params=preset(settings.chat.preset, max_tokens=settings.chat.max_reply_tokens),
                seed=settings.chat.seed,
            )
        self.services = Services(
            settings, engine, sessions, labelling, chat, runner, unavailable, synthetic
        )
        # Before the cogs, so a cog can schedule its own jobs (e.g. one per task channel) when it loads.
        self.jobs = jobs.Jobs(self.services, holder=lease_holder_id(settings.discord.shard_ids))
        for extension in settings.discord.cogs:
            await self.load_extension(extension)
            log.info("loaded %s", extension)
        self.jobs.start()
        self._drop_replayed_interactions()
        if settings.discord.sync_commands:
            await self._sync_commands()
        # Start-up objects (modules, models, compiled statements) live as long as the process: moved out
        # of the collector's reach, full collections no longer pause the loop for tens of milliseconds.
        gc.freeze()

    def add_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None:
        super().add_dynamic_items(*items)
        self.component_items.update(items)

    def remove_dynamic_items(self, *items: type[discord.ui.DynamicItem[Any]]) -> None:
        super().remove_dynamic_items(*items)
        self.component_items.difference_update(items)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await answer_unclaimed_component(interaction, self.component_items)

    def handles_guild(self, guild_id: int) -> bool:
        """Whether this process runs the shard of that guild (its events and its channel posts)."""
        return self.settings.discord.handles_guild(guild_id)

    def _drop_replayed_interactions(self) -> None:
        """A gateway that replays events (a resume whose acknowledgements were lost) may deliver an
        interaction twice; it was answered the first time and cannot be answered again, so the copy is
        dropped before any handler sees it (discord.py has no hook for this but its parser table)."""
        parsers = self._connection.parsers
        parse = parsers["INTERACTION_CREATE"]
        seen: OrderedDict[str, None] = OrderedDict()

        def parse_once(data: dict) -> None:
            if data["id"] in seen:
                log.info("dropped a replayed interaction %s", data["id"])
                return
            seen[data["id"]] = None
            if len(seen) > SEEN_INTERACTIONS:
                seen.popitem(last=False)
            parse(data)

        parsers["INTERACTION_CREATE"] = parse_once

    async def _sync_commands(self) -> None:
        guild_ids = self.settings.discord.command_guild_ids
        if guild_ids:
            # Guild commands appear at once, global ones can take up to an hour: handy in development.
            for guild_id in guild_ids:
                guild = discord.Object(guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def close(self) -> None:
        # Every caller (signal handler, `async with`, discord.py itself) waits for the same shutdown,
        # so the process never exits while the database is still being closed.
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self._close())
        await asyncio.shield(self._shutdown)

    async def _close(self) -> None:
        log.info("shutting down")
        # Cogs with work in progress (a reply being streamed) finish it or put it aside first, while the
        # bot still listens, so what arrives meanwhile is stored rather than missed.
        for cog in list(self.cogs.values()):
            drain = getattr(cog, "drain", None)
            if drain is not None:
                try:
                    await drain()
                except Exception:
                    log.exception("draining %s failed", type(cog).__name__)
        # Cogs unload first so they finish or persist work in progress while the database is open.
        for extension in list(self.extensions):
            try:
                await self.unload_extension(extension)
            except Exception:
                log.exception("unloading %s failed", extension)
        if self.jobs is not None:
            await self.jobs.stop()
        await super().close()
        if self.services is not None:
            if self.services.chat_runner is not None:
                await self.services.chat_runner.close()
            await self.services.engine.dispose()

    async def on_error(self, event_method: str, /, *args: object, **kwargs: object) -> None:
        """A listener failed: the member of an interaction it was handling gets a polite answer, and a
        database out of reach is one log line rather than a traceback per event."""
        error = sys.exc_info()[1]
        interaction = next((arg for arg in args if isinstance(arg, discord.Interaction)), None)
        if error is not None and interaction is not None:
            await answer_failure(interaction, error, event_method)
        elif error is not None and db.is_unavailable(error):
            log.warning("%s failed: the database is unavailable: %s", event_method, db.describe_error(error))
        else:
            await super().on_error(event_method, *args, **kwargs)

    async def on_ready(self) -> None:
        log.info("connected as %s (%s) in %d guilds, shards %s of %s", self.user, self.user.id if self.user else "?",
                 len(self.guilds), sorted(self.shards), self.shard_count)


def lease_holder_id(shard_ids: list[int] | None) -> str:
    """This process's name in the job lease table: host, pid, and its shards when it runs only some."""
    return leases.new_holder_id("shards=" + ",".join(map(str, shard_ids)) if shard_ids is not None else "")


async def serve(settings: Settings) -> None:
    """Run until the gateway closes or SIGINT/SIGTERM arrive, then shut down cleanly."""
    point_discord_at(settings.discord.api_base_url, settings.discord.gateway_url)
    bot = OABot(settings)
    loop = asyncio.get_running_loop()

    def _stop(sig: signal.Signals) -> None:
        log.info("received %s", sig.name)
        loop.create_task(bot.close())

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stop, sig)
    async with bot:
        try:
            await bot.start(settings.discord.token or "")
        finally:
            # discord.py's __aexit__ skips close() once the gateway is closed; the rest of the
            # shutdown (runner, database) must still finish before the loop ends.
            await bot.close()

"""What cogs and scheduled jobs may use: the Discord-free services, built once by the bot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.chat.service import ChatService
from bot.chat.synthetic import SyntheticReplier
from bot.config import Settings
from bot.labelling.service import LabellingService
from model_runner import ChatRunner


@dataclass
class Services:
    """What cogs may use; each is Discord-free."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    labelling: LabellingService
    chat: ChatService | None = None
    chat_runner: ChatRunner | None = None
    # Why chat is off, in words users can be shown; None while chat works.
    chat_unavailable_reason: str | None = None
    synthetic: SyntheticReplier | None = None

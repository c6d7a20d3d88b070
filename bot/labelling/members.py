"""What a member sees about themselves and others: the leaderboard with their own standing, profiles, the
work waiting in their language, and their own settings.

Every method takes the caller's Discord id, creates their user on first contact and does its work in
that same transaction (one interaction, one transaction). Members who cannot be named (they left the
server, or no name is known) are shown under a stable pseudonym, never by their Discord id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling import leaderboard, tasks
from bot.labelling.errors import LabellingError
from bot.labelling.language import effective_language, normalise_language
from bot.labelling.leaderboard import PERIODS, LeaderboardEntry, ScoreLine, UserStats
from bot.labelling.member_tasks import Member
from bot.labelling.points import MAX_LEVEL, level_for, points_for_level
from bot.labelling.service import LabellingService, get_or_create_user
from storage.enums import Role
from storage.models import Message, User

PAGE_SIZE = 10
HISTORY_LINES = 8
OWNER_TOKEN_LENGTH = 10
# `/settings language auto` gives the choice back to the Discord locale.
AUTO = "auto"


class MemberRefused(LabellingError):
    default_messages = {
        "profile_hidden": "That member keeps their profile private.",
        "invalid_language": "That is not a language tag. Use a tag such as en, de, fr, pt-BR, or auto.",
        "unknown_period": "Choose one of day, week, month or all.",
        "banned": "You are banned from the labelling campaign.",
    }


@dataclass(frozen=True)
class BoardLine:
    entry: LeaderboardEntry
    pseudonym: str


@dataclass(frozen=True)
class Standing:
    """The caller's own place on the board, shown on every page."""

    line: BoardLine | None  # None: no points in the period, or hidden
    page: int | None  # the page their line is on
    opted_out: bool
    banned: bool


@dataclass(frozen=True)
class BoardPage:
    period: str
    page: int
    pages: int
    ranked_users: int
    lines: list[BoardLine]
    standing: Standing


@dataclass(frozen=True)
class Progress:
    """How far the member is from their level to the next one."""

    level: int
    points: float
    floor: float
    next_level_points: float | None  # None at the highest level

    @property
    def fraction(self) -> float:
        if self.next_level_points is None:
            return 1.0
        span = self.next_level_points - self.floor
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.points - self.floor) / span))


@dataclass(frozen=True)
class Profile:
    discord_id: int
    stored_name: str
    pseudonym: str
    own: bool
    opted_out: bool
    stats: UserStats | None  # None: never contributed
    progress: Progress | None
    assistant_replies: int = 0
    prompter_replies: int = 0
    history: tuple[ScoreLine, ...] = ()

    @property
    def contributed(self) -> bool:
        return self.stats is not None


@dataclass(frozen=True)
class TasksOverview:
    lang: str
    # Where the language came from: "option", "setting", "locale" or "default".
    language_source: str
    available: dict[str, bool]
    trees_by_state: dict[str, int]


@dataclass(frozen=True)
class MemberSettings:
    language: str | None  # the member's choice; None follows the Discord locale
    effective_language: str
    opted_out: bool


def display_pseudonym(salt: bytes, discord_id: int) -> str:
    """A short stable name for a member who cannot be named. Keyed and domain-separated from the export
    pseudonyms: it links to neither the Discord id nor the exported user id."""
    digest = hmac.new(salt, f"display:{discord_id}".encode(), hashlib.sha256).hexdigest()
    return f"Contributor {digest[:4]}"


def owner_token(salt: bytes, discord_id: int) -> str:
    """Names who asked for a paged view inside its buttons' custom_ids without writing their Discord id."""
    return hmac.new(salt, f"owner:{discord_id}".encode(), hashlib.sha256).hexdigest()[:OWNER_TOKEN_LENGTH]


def level_progress(points: float) -> Progress:
    level = level_for(points)
    floor = points_for_level(level)
    next_points = None if level >= MAX_LEVEL else points_for_level(level + 1)
    return Progress(level, round(points, 2), floor, next_points)


async def reply_counts(session: AsyncSession, user_id: int) -> Counter[str]:
    """The user's replies (not prompts) per role."""
    rows = await session.execute(
        select(Message.role, func.count())
        .where(Message.author_id == user_id, Message.parent_id.is_not(None))
        .group_by(Message.role)
    )
    return Counter({str(role): count for role, count in rows.all()})


def _has_contributed(stats: UserStats) -> bool:
    return bool(stats.points or stats.prompts or stats.replies or stats.labels or stats.rankings or stats.skips)


class MemberService:
    def __init__(self, labelling: LabellingService, *, salt: bytes) -> None:
        self.sessions = labelling.sessions
        self.ctx = labelling.ctx
        self._salt = salt

    def pseudonym(self, discord_id: int) -> str:
        return display_pseudonym(self._salt, discord_id)

    def owner_token(self, discord_id: int) -> str:
        return owner_token(self._salt, discord_id)

    async def _caller(self, session: AsyncSession, caller: Member) -> User:
        user = await get_or_create_user(session, caller.discord_id, display_name=caller.display_name,
                                        locale=caller.locale)
        await session.flush()
        return user

    def _line(self, entry: LeaderboardEntry) -> BoardLine:
        return BoardLine(entry, self.pseudonym(entry.discord_id))

    async def leaderboard(self, caller: Member, period: str = "week", page: int = 0) -> BoardPage:
        if period not in PERIODS:
            raise MemberRefused("unknown_period")
        async with self.sessions.begin() as session:
            user = await self._caller(session, caller)
            board = await leaderboard.leaderboard_page(session, self.ctx, period, page, PAGE_SIZE)
            mine = await leaderboard.board_position(session, self.ctx, user.id, period)
            standing = Standing(
                None if mine is None else self._line(mine[0]),
                None if mine is None else mine[1] // PAGE_SIZE,
                user.opted_out, user.banned,
            )
            return BoardPage(period, board.page, board.pages, board.ranked_users,
                             [self._line(entry) for entry in board.entries], standing)

    async def profile(self, caller: Member, target_discord_id: int | None = None) -> Profile:
        """The caller's profile, or another member's; an opted-out member's only to themselves."""
        async with self.sessions.begin() as session:
            me = await self._caller(session, caller)
            discord_id = caller.discord_id if target_discord_id is None else target_discord_id
            own = discord_id == caller.discord_id
            user = me if own else await session.scalar(select(User).where(User.discord_id == discord_id))
            if user is None:
                return Profile(discord_id, "", self.pseudonym(discord_id), own, False, None, None)
            if user.opted_out and not own:
                raise MemberRefused("profile_hidden")
            stats = await leaderboard.user_stats(session, self.ctx, user.id, include_synthetic=False)
            if not _has_contributed(stats):
                return Profile(discord_id, user.display_name, self.pseudonym(discord_id), own, user.opted_out,
                               None, None)
            replies = await reply_counts(session, user.id)
            history = await leaderboard.score_history(session, user.id, HISTORY_LINES)
            return Profile(
                discord_id, user.display_name, self.pseudonym(discord_id), own, user.opted_out, stats,
                level_progress(stats.points), replies[Role.ASSISTANT], replies[Role.PROMPTER], tuple(history),
            )

    async def tasks_overview(self, caller: Member, language: str | None = None) -> TasksOverview:
        """The kinds of work the caller could take now, and the trees per state, in their language."""
        if language and normalise_language(language) is None:
            raise MemberRefused("invalid_language")
        async with self.sessions.begin() as session:
            user = await self._caller(session, caller)
            if user.banned:
                raise MemberRefused("banned")
            default = self.ctx.settings.default_language
            lang = effective_language(language, user.language, caller.locale, default)
            source = next(
                (name for name, tag in (("option", language), ("setting", user.language), ("locale", caller.locale))
                 if normalise_language(tag)),
                "default",
            )
            overview = await tasks.work_overview(session, self.ctx, user.id, lang)
            return TasksOverview(lang, source, overview.available, overview.trees_by_state)

    def _settings(self, user: User, caller: Member) -> MemberSettings:
        lang = effective_language(None, user.language, caller.locale, self.ctx.settings.default_language)
        return MemberSettings(user.language, lang, user.opted_out)

    async def settings(self, caller: Member) -> MemberSettings:
        async with self.sessions.begin() as session:
            return self._settings(await self._caller(session, caller), caller)

    async def set_language(self, caller: Member, tag: str) -> MemberSettings:
        """Label in this language from now on; ``auto`` follows the Discord locale again."""
        chosen = None
        if tag.strip().lower() != AUTO:
            chosen = normalise_language(tag)
            if chosen is None:
                raise MemberRefused("invalid_language")
        async with self.sessions.begin() as session:
            user = await self._caller(session, caller)
            user.language = chosen
            return self._settings(user, caller)

    async def set_opted_out(self, caller: Member, opted_out: bool) -> MemberSettings:
        """Keep (or no longer keep) the member's contributions out of exports and off leaderboards."""
        async with self.sessions.begin() as session:
            user = await self._caller(session, caller)
            user.opted_out = opted_out
            return self._settings(user, caller)

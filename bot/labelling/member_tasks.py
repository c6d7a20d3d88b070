"""The member's task loop with Discord ids at the edge: each method is one interaction and one
transaction. The member is created on first contact inside that transaction, so a refusal rolls
everything back, the new user row included, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.labelling import submissions, tasks
from bot.labelling.errors import LabellingError, TaskRefused
from bot.labelling.language import effective_language, normalise_language
from bot.labelling.service import LabellingService, get_or_create_user
from bot.labelling.trees import LABEL_KINDS, RANK_KINDS, REPLY_KINDS
from storage.enums import TaskKind
from storage.models import Message, Ranking, Task, User

# What a member may ask /task for, by the words they see, and the engine's kinds behind each.
KIND_CHOICES: dict[str, tuple[TaskKind, ...] | None] = {
    "any": None,
    "prompt": (TaskKind.INITIAL_PROMPT,),
    "assistant_reply": (TaskKind.ASSISTANT_REPLY,),
    "prompter_reply": (TaskKind.PROMPTER_REPLY,),
    "review": LABEL_KINDS,
    "rank": RANK_KINDS,
}
WRITE_KINDS = (TaskKind.INITIAL_PROMPT, *REPLY_KINDS)


class InvalidLanguage(LabellingError):
    default_messages = {"invalid_language": "That is not a language tag; use one such as en, de or pt-BR."}


class UnknownChoice(LabellingError):
    default_messages = {"unknown_kind": "That is not a kind of task; pick one from the list."}


@dataclass(frozen=True)
class Member:
    """Who is acting, as Discord says: their id, the name shown, the client's locale."""

    discord_id: int
    display_name: str | None = None
    locale: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a submission did, for the member: points earned and what happens next.

    ``progress``/``needed`` count the reviews of the message (write and review tasks) or the
    rankings of the reply set (rank tasks); ``accepted`` is set when this review decided the message.
    ``asked`` and ``lang`` are what the member asked /task for, so "Next task" asks the same.
    """

    task_id: int
    kind: TaskKind
    points: float
    tree_state: str | None
    asked: str
    lang: str
    progress: int | None = None
    needed: int | None = None
    accepted: bool | None = None
    skipped: bool = False


class MemberTasks:
    def __init__(self, service: LabellingService) -> None:
        self.service = service
        self.ctx = service.ctx
        self.sessions = service.sessions

    async def _user(self, session: AsyncSession, member: Member) -> User:
        return await get_or_create_user(session, member.discord_id, display_name=member.display_name,
                                        locale=member.locale)

    async def request(self, member: Member, asked: str = "any", language: str | None = None) -> tasks.TaskOffer:
        """A new task of the asked kind in the member's language (the option, else their saved choice,
        else their Discord locale, else the campaign's default)."""
        if asked not in KIND_CHOICES:
            raise UnknownChoice("unknown_kind")
        if language and normalise_language(language) is None:
            raise InvalidLanguage("invalid_language")
        async with self.sessions.begin() as session:
            user = await self._user(session, member)
            lang = effective_language(language, user.language, member.locale, self.ctx.settings.default_language)
            offer = await tasks.request_task(session, self.ctx, user.id, lang, KIND_CHOICES[asked])
            task = await session.get(Task, offer.task_id)
            task.payload = {**task.payload, "asked": asked}
            return offer

    async def open(self, member: Member, task_id: int) -> tasks.TaskOffer:
        """The member's task, still open, to show again (from any button, also after a restart).
        Read-only, so a click that only changes what is shown never waits for a writer."""
        async with self.sessions() as session:
            user = await session.scalar(select(User).where(User.discord_id == member.discord_id))
            task = await self._open_task(session, task_id, user)
            return await tasks.describe_task(session, task)

    async def _open_task(self, session: AsyncSession, task_id: int, user: User | None) -> Task:
        """Refuses, with the engine's reasons, a task this member cannot work on now."""
        return submissions.refuse_unworkable(await session.get(Task, task_id), user,
                                             user.id if user is not None else None, self.ctx.now())

    async def submit_text(self, member: Member, task_id: int, text: str) -> Outcome:
        """A prompt or a reply, whichever the task asks for."""
        async with self.sessions.begin() as session:
            user = await self._user(session, member)
            task = await self._open_task(session, task_id, user)
            if task.kind == TaskKind.INITIAL_PROMPT:
                result = await submissions.submit_initial_prompt(session, self.ctx, task_id, user.id, text)
                needed = self.ctx.settings.reviews_initial_prompt
            elif task.kind in REPLY_KINDS:
                result = await submissions.submit_reply(session, self.ctx, task_id, user.id, text)
                needed = self.ctx.settings.reviews_reply
            else:
                raise TaskRefused("wrong_task_kind")
            return self._outcome(task, result, progress=0, needed=needed)

    async def submit_review(self, member: Member, task_id: int, answers: Sequence[float | None]) -> Outcome:
        """A review given as one answer per label of the task, in the offer's order (None: not answered)."""
        async with self.sessions.begin() as session:
            user = await self._user(session, member)
            task = await self._open_task(session, task_id, user)
            names = task.payload.get("labels", ())
            if len(answers) != len(names):
                raise TaskRefused("invalid_labels", "Those answers do not fit this task; please open it again.")
            labels = {name: value for name, value in zip(names, answers, strict=True) if value is not None}
            result = await submissions.submit_labels(session, self.ctx, task_id, user.id, labels)
            message = await session.get(Message, result.message_id)
            settings = self.ctx.settings
            needed = settings.reviews_initial_prompt if message.parent_id is None else settings.reviews_reply
            return self._outcome(task, result, progress=message.review_count, needed=needed,
                                 accepted=result.review_decided)

    async def submit_ranking(self, member: Member, task_id: int, positions: Sequence[int] | None, *,
                             not_rankable: bool = False) -> Outcome:
        """Best first, as positions in the offer's list of replies; or the set flagged as not rankable."""
        async with self.sessions.begin() as session:
            user = await self._user(session, member)
            task = await self._open_task(session, task_id, user)
            shown = task.payload.get("reply_ids", [])
            ordered = None
            if not not_rankable:
                if any(not 0 <= p < len(shown) for p in positions or ()):
                    raise TaskRefused("invalid_ranking")
                ordered = [shown[p] for p in positions or ()]
            result = await submissions.submit_ranking(session, self.ctx, task_id, user.id, ordered,
                                                      not_rankable=not_rankable)
            done = await session.scalar(
                select(func.count()).select_from(Ranking)
                .where(Ranking.parent_id == task.target_message_id, Ranking.not_rankable.is_(not_rankable))
            )
            return self._outcome(task, result, progress=done or 0, needed=self.ctx.settings.rankings_needed)

    async def skip(self, member: Member, task_id: int, reason: str | None = None) -> Outcome:
        async with self.sessions.begin() as session:
            user = await self._user(session, member)
            task = await self._open_task(session, task_id, user)
            result = await submissions.skip_task(session, self.ctx, task_id, user.id, reason)
            return self._outcome(task, result, skipped=True)

    @staticmethod
    def _outcome(task: Task, result: submissions.SubmissionResult, **details: object) -> Outcome:
        return Outcome(task.id, TaskKind(task.kind), result.points, result.tree_state,
                       task.payload.get("asked", "any"), task.lang, **details)  # type: ignore[arg-type]

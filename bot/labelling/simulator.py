"""A whole campaign with synthetic users, through the same service calls the cogs make.

Honest users judge a hidden true quality with noise; trolls write spam, label at random and rank at
random. The campaign runs in simulated time (a virtual clock) until no user can be given any task and
tree maintenance changes nothing, then reports what happened and, for trees that did not finish,
why. Operators use it to tune ``[labelling]`` before a launch; the tests use it at scale.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import LabellingSettings
from bot.labelling.errors import LabellingError, NoTaskAvailable, TaskRefused
from bot.labelling.service import LabellingService
from bot.labelling.tasks import TaskOffer
from bot.labelling.trees import RANK_KINDS, REPLY_KINDS
from storage.enums import Role, TaskKind, TaskState, TreeState
from storage.models import Label, Message, MessageTree, Ranking, Task

SIMULATION_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LIKERT = (0.0, 0.25, 0.5, 0.75, 1.0)
SPAM_TEXTS = (
    "BUY CHEAP FOLLOWERS NOW!!! click my link",
    "lol whatever",
    "asdfghjkl",
    "first!!!",
    "Visit my totally legit crypto giveaway",
)
TOPICS = (
    "photosynthesis", "the French revolution", "sorting algorithms", "sourdough bread", "black holes",
    "learning a new language", "tax returns", "climbing safety", "Python decorators", "jazz harmony",
    "composting at home", "the immune system", "writing a cover letter", "chess openings", "tides",
)
# A round in which every user is idle ends the campaign; this only guards against a bug looping forever.
MAX_ROUNDS = 5000


class VirtualClock:
    def __init__(self, start: datetime = SIMULATION_START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Agent:
    user_id: int
    name: str
    troll: bool


@dataclass
class SimulationReport:
    users: int
    trolls: int
    prompts: int
    seed: int
    trees_by_state: dict[str, int]
    exported_trees: int
    human_actions: int
    human_actions_per_exported_tree: float | None
    honest_mean_agreement: float | None
    troll_mean_agreement: float | None
    honest_rankings: int
    troll_rankings: int
    votes: int
    # Review outcomes against the hidden truth: how well the acceptance rule sorts wheat from chaff.
    honest_messages_rejected: int
    honest_messages_reviewed: int
    spam_accepted: int
    spam_reviewed: int
    refusals: dict[str, int]
    stop_reason: str
    # The quality of the data: shares of wrong review outcomes, how far honest rankings agree better
    # than trolls' (leave-one-out), how many labels each review mode gave, and user turns without an
    # answer in exported trees.
    honest_messages_rejected_share: float | None = None
    spam_accepted_share: float | None = None
    agreement_gap: float | None = None
    label_rows_full: int = 0
    label_rows_simple: int = 0
    unanswered_prompter_turns: int = 0
    unfinished: dict[str, str] = field(default_factory=dict)
    rounds: int = 0
    simulated_hours: float = 0.0
    exported_lines: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        per_tree = self.human_actions_per_exported_tree
        lines = [
            f"campaign: {self.users} users ({self.trolls} trolls), {self.prompts} prompts, seed {self.seed}",
            f"stopped: {self.stop_reason} after {self.rounds} rounds, {self.simulated_hours:.1f} simulated hours",
            "trees per state: " + ", ".join(f"{s} {n}" for s, n in sorted(self.trees_by_state.items())),
            f"human actions: {self.human_actions} "
            f"({'n/a' if per_tree is None else f'{per_tree:.1f}'} per exported tree), votes: {self.votes}",
            f"mean ranking agreement: honest {fmt(self.honest_mean_agreement)} ({self.honest_rankings} rankings), "
            f"trolls {fmt(self.troll_mean_agreement)} ({self.troll_rankings} rankings)",
        ]
        lines.append(
            f"review outcomes: {self.honest_messages_rejected} of {self.honest_messages_reviewed} honest messages "
            f"rejected ({fmt(self.honest_messages_rejected_share)}), {self.spam_accepted} of {self.spam_reviewed} "
            f"spam messages accepted ({fmt(self.spam_accepted_share)})"
        )
        lines.append(
            f"agreement gap (honest - trolls): {fmt(self.agreement_gap)}; label rows: {self.label_rows_full} full, "
            f"{self.label_rows_simple} simple; unanswered user turns in exported trees: "
            f"{self.unanswered_prompter_turns}"
        )
        if self.refusals:
            lines.append("refused submissions: " + ", ".join(f"{r} {n}" for r, n in sorted(self.refusals.items())))
        for tree, why in self.unfinished.items():
            lines.append(f"unfinished tree {tree}: {why}")
        if self.exported_lines is not None:
            lines.append(f"exported {self.exported_lines} trees")
        return "\n".join(lines)


class Simulation:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: LabellingSettings, *,
                 users: int, prompts: int, trolls: int, seed: int, lang: str | None = None) -> None:
        if trolls > users:
            raise ValueError("there cannot be more trolls than users")
        self.sessions = sessions
        self.clock = VirtualClock()
        self.rng = random.Random(seed)
        self.service = LabellingService(sessions, settings, rng=random.Random(seed + 1), clock=self.clock)
        self.lang = lang or settings.default_language
        self.users, self.prompts, self.trolls, self.seed = users, prompts, trolls, seed
        self.agents: list[Agent] = []
        self.quality: dict[int, float] = {}  # message id -> hidden true quality
        self.spam: set[int] = set()
        self.refusals: Counter[str] = Counter()
        self.votes = 0
        self._counter = 0
        self._prompts_written = 0

    # Writing
    def _text(self, agent: Agent, what: str) -> tuple[str, float, bool]:
        self._counter += 1
        if agent.troll:
            # Trolls often repeat themselves: the engine must refuse the duplicates.
            return self.rng.choice(SPAM_TEXTS), 0.02, True
        topic = self.rng.choice(TOPICS)
        quality = self.rng.uniform(0.3, 1.0)
        return f"{what} about {topic} by {agent.name} (#{self._counter}, care {quality:.2f})", quality, False

    def _remember(self, message_id: int | None, quality: float, spam: bool) -> None:
        if message_id is not None:
            self.quality[message_id] = quality
            if spam:
                self.spam.add(message_id)

    async def _submit_text(self, agent: Agent, offer: TaskOffer, what: str) -> None:
        text, quality, spam = self._text(agent, what)
        try:
            if offer.kind == TaskKind.INITIAL_PROMPT:
                result = await self.service.submit_initial_prompt(offer.task_id, agent.user_id, text)
            else:
                result = await self.service.submit_reply(offer.task_id, agent.user_id, text)
        except TaskRefused as refusal:
            self.refusals[refusal.reason] += 1
            await self.service.skip_task(offer.task_id, agent.user_id, refusal.reason)
            return
        self._remember(result.message_id, quality, spam)

    # Judging
    def _perceived(self, message_id: int) -> float:
        return self.quality.get(message_id, 0.5) + self.rng.gauss(0, 0.12)

    def _labels(self, agent: Agent, offer: TaskOffer) -> dict[str, float]:
        if agent.troll:
            return {spec.name: self.rng.choice(LIKERT) if spec.kind == "likert" else float(self.rng.random() < 0.5)
                    for spec in offer.labels}
        target = offer.target_message_id
        is_spam = target in self.spam
        # Honest reviewers recognise spam, with a small error rate either way.
        labels = {"spam": float(is_spam != (self.rng.random() < 0.05))}
        for spec in offer.labels:
            if spec.name == "spam":
                continue
            if spec.name in ("quality", "helpfulness", "creativity"):
                labels[spec.name] = min(LIKERT, key=lambda v: abs(v - self._perceived(target)))
            elif spec.name == "fails_task":
                labels[spec.name] = float(self._perceived(target) < 0.35)
            else:
                labels[spec.name] = 0.0
        return labels

    async def _maybe_vote(self, agent: Agent, offer: TaskOffer) -> None:
        target = offer.target_message_id
        if target is None:
            return
        emoji = None
        if agent.troll and self.rng.random() < 0.1:
            emoji = "-1"
        elif not agent.troll and target in self.spam and self.rng.random() < 0.3:
            emoji = "red_flag"
        elif not agent.troll and self.quality.get(target, 0) > 0.85 and self.rng.random() < 0.2:
            emoji = "+1"
        if emoji is None:
            return
        try:
            await self.service.vote(agent.user_id, target, emoji)
            self.votes += 1
        except LabellingError as refusal:
            self.refusals[f"vote_{refusal.reason}"] += 1

    async def _act(self, agent: Agent, offer: TaskOffer) -> None:
        if not agent.troll and self.rng.random() < 0.02:
            await self.service.skip_task(offer.task_id, agent.user_id, "not my topic")
            return
        try:
            if offer.kind in REPLY_KINDS:
                await self._submit_text(agent, offer, "A reply")
            elif offer.kind in RANK_KINDS:
                ids = [reply.id for reply in offer.replies]
                if agent.troll:
                    self.rng.shuffle(ids)
                else:
                    ids.sort(key=self._perceived, reverse=True)
                await self.service.submit_ranking(offer.task_id, agent.user_id, ids)
            else:
                await self.service.submit_labels(offer.task_id, agent.user_id, self._labels(agent, offer))
                await self._maybe_vote(agent, offer)
        except TaskRefused as refusal:
            self.refusals[refusal.reason] += 1

    # The campaign
    async def _create_agents(self) -> None:
        troll_slots = set(self.rng.sample(range(self.users), self.trolls))
        for index in range(self.users):
            troll = index in troll_slots
            name = f"{'troll' if troll else 'honest'}-{index + 1}"
            info = await self.service.get_or_create_user(10_000 + index, display_name=name, locale=self.lang,
                                                         synthetic=True)
            self.agents.append(Agent(info.id, name, troll))

    async def _write_prompts(self) -> int:
        """Write the prompts still due; stops early while the review queue is full (max_prompts_in_review),
        and the main loop calls again once reviews have made room."""
        written = 0
        attempts = 3 * (self.prompts - self._prompts_written) + 10
        while self._prompts_written < self.prompts and attempts > 0:
            attempts -= 1
            agent = self.rng.choice(self.agents)
            try:
                offer = await self.service.request_task(agent.user_id, self.lang, [TaskKind.INITIAL_PROMPT])
            except NoTaskAvailable as none:
                if none.reason == "no_work":
                    break
                continue
            before = len(self.quality)
            await self._submit_text(agent, offer, "A question")
            if len(self.quality) > before:
                self._prompts_written += 1
                written += 1
            self.clock.advance(self.rng.uniform(5, 30))
        return written

    async def run(self) -> SimulationReport:
        await self._create_agents()
        work_kinds = [k for k in TaskKind if k != TaskKind.INITIAL_PROMPT]
        stop_reason = f"stopped after {MAX_ROUNDS} rounds (safety limit)"
        rounds = 0
        while rounds < MAX_ROUNDS:
            rounds += 1
            busy = await self._write_prompts()
            wait_until: datetime | None = None
            order = self.agents[:]
            self.rng.shuffle(order)
            for agent in order:
                try:
                    offer = await self.service.request_task(agent.user_id, self.lang, work_kinds)
                except NoTaskAvailable as none:
                    if none.retry_at is not None:
                        wait_until = none.retry_at if wait_until is None else min(wait_until, none.retry_at)
                    continue
                busy += 1
                await self._act(agent, offer)
                self.clock.advance(self.rng.uniform(5, 40))
            if busy:
                continue
            if wait_until is not None:
                self.clock.now = max(self.clock.now, wait_until)
                continue
            # Nobody could work: let the scheduler's jobs run; if they change nothing, the campaign is over.
            self.clock.advance(600)
            expired = await self.service.expire_tasks()
            report = await self.service.maintain_trees()
            if not (expired or report.promoted or report.advanced):
                stop_reason = "no work left for any user"
                break
        return await self._report(stop_reason, rounds)

    async def _unfinished(self, session: AsyncSession) -> dict[str, str]:
        explanations = {
            TreeState.INITIAL_PROMPT_REVIEW: "prompt still needs reviews, and every user who may review it has",
            TreeState.PROMPT_LOTTERY_WAITING: "waiting for a free growing slot",
            TreeState.GROWING: "needs more replies or reviews, and no user may write or review them "
                               "(own message, already replied, reviewed or skipped)",
            TreeState.RANKING: "a reply set needs more rankings, and every user who may rank it has "
                               "(authors of the replies never rank their own set)",
            TreeState.SCORING_FAILED: "scoring failed (see the log)",
        }
        rows = (await session.execute(
            select(MessageTree.id, MessageTree.state)
            .where(MessageTree.state.not_in(
                [TreeState.READY_FOR_EXPORT, TreeState.ABORTED_LOW_GRADE, TreeState.HALTED_BY_MODERATOR]))
            .order_by(MessageTree.id)
        )).all()
        return {str(tree_id): f"{state}: {explanations.get(state, 'no transition due')}" for tree_id, state in rows}

    async def _report(self, stop_reason: str, rounds: int) -> SimulationReport:
        trolls = {a.user_id for a in self.agents if a.troll}
        async with self.sessions() as session:
            by_state = dict((await session.execute(
                select(MessageTree.state, func.count()).group_by(MessageTree.state)
            )).all())
            actions = await session.scalar(
                select(func.count()).select_from(Task).where(Task.state.in_([TaskState.DONE, TaskState.SKIPPED]))
            ) or 0
            agreements = (await session.execute(
                select(Ranking.user_id, Ranking.agreement).where(Ranking.agreement.is_not(None))
            )).all()
            unfinished = await self._unfinished(session)
            reviewed = (await session.execute(
                select(Message.id, Message.review_result).where(Message.review_result.is_not(None))
            )).all()
            label_modes = dict((await session.execute(select(Label.mode, func.count()).group_by(Label.mode))).all())
            unanswered = await self._unanswered_prompter_turns(session)
        honest = [a for u, a in agreements if u not in trolls]
        troll = [a for u, a in agreements if u in trolls]
        exported = by_state.get(TreeState.READY_FOR_EXPORT, 0)
        honest_mean = round(sum(honest) / len(honest), 3) if honest else None
        troll_mean = round(sum(troll) / len(troll), 3) if troll else None
        honest_rejected = sum(1 for m, ok in reviewed if m not in self.spam and not ok)
        honest_reviewed = sum(1 for m, _ in reviewed if m not in self.spam)
        spam_accepted = sum(1 for m, ok in reviewed if m in self.spam and ok)
        spam_reviewed = sum(1 for m, _ in reviewed if m in self.spam)

        def share(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        return SimulationReport(
            users=self.users, trolls=self.trolls, prompts=self.prompts, seed=self.seed,
            trees_by_state={str(k): v for k, v in by_state.items()}, exported_trees=exported,
            human_actions=actions,
            human_actions_per_exported_tree=round(actions / exported, 1) if exported else None,
            honest_mean_agreement=honest_mean, troll_mean_agreement=troll_mean,
            honest_rankings=len(honest), troll_rankings=len(troll), votes=self.votes,
            honest_messages_rejected=honest_rejected, honest_messages_reviewed=honest_reviewed,
            spam_accepted=spam_accepted, spam_reviewed=spam_reviewed,
            refusals=dict(self.refusals), stop_reason=stop_reason, unfinished=unfinished, rounds=rounds,
            simulated_hours=round((self.clock.now - SIMULATION_START).total_seconds() / 3600, 1),
            honest_messages_rejected_share=share(honest_rejected, honest_reviewed),
            spam_accepted_share=share(spam_accepted, spam_reviewed),
            agreement_gap=None if honest_mean is None or troll_mean is None else round(honest_mean - troll_mean, 3),
            label_rows_full=label_modes.get("full", 0), label_rows_simple=label_modes.get("simple", 0),
            unanswered_prompter_turns=unanswered,
        )

    async def _unanswered_prompter_turns(self, session: AsyncSession) -> int:
        """User turns (not prompts) of exported trees with no accepted, non-deleted answer."""
        child = Message.__table__.alias("child")
        answered = exists().where(child.c.parent_id == Message.id, child.c.deleted.is_(False),
                                  child.c.review_result.is_(True))
        return await session.scalar(
            select(func.count()).select_from(Message)
            .join(MessageTree, MessageTree.id == Message.tree_id)
            .where(MessageTree.state == TreeState.READY_FOR_EXPORT, Message.role == Role.PROMPTER,
                   Message.depth > 0, Message.deleted.is_(False), Message.review_result.is_(True), ~answered)
        ) or 0


async def simulate(sessions: async_sessionmaker[AsyncSession], settings: LabellingSettings, *, users: int,
                   prompts: int, trolls: int, seed: int, lang: str | None = None) -> SimulationReport:
    return await Simulation(sessions, settings, users=users, prompts=prompts, trolls=trolls, seed=seed,
                            lang=lang).run()


def prepare_database_file(path: str) -> None:
    """Start a simulation from an empty file. An earlier simulation's database is replaced; a file
    holding any real (non-synthetic) user is refused, so a typo cannot wipe a live campaign."""
    import os
    import sqlite3

    if not os.path.exists(path):
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            real = connection.execute("SELECT count(*) FROM users WHERE synthetic = 0").fetchone()[0] \
                if "users" in tables else 0
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path} exists and is not a simulation database ({exc}); pick another path") from None
    if real:
        raise ValueError(f"{path} holds {real} real users; refusing to overwrite it with a simulation")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)

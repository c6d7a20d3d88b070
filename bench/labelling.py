"""Labelling benchmark: fill a SQLite database like a big campaign, then time the hot paths.

    python bench/labelling.py [--scale 1.0] [--db PATH] [--keep] [--repeat 200]
    python bench/labelling.py --reuse --db PATH      # measure again without refilling

At scale 1: 10k users, 100k trees (about 1M messages): the open trees the engine allows per
language (10 growing, 80 prompts in review) and a history in every other state, three reviews
per reviewed message, three rankings per ranked parent (with their done tasks), reactions, score
events over the last six months (and their per-user daily totals), open and skipped tasks, and some chats with preference pairs.
Prints one JSON object: fill time and row counts; p50/p99 of task selection (also per kind of
task offered), a ranking submission, a vote and the leaderboards, each through LabellingService
(one committed transaction per call, as a cog makes it); the export rate per wall and per CPU
second and its peak RSS (in a fresh child process, so the fill's memory does not count); and the
load average, because figures from a busy machine are not comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.calibration import calibration_ms  # noqa: E402
from storage import db  # noqa: E402

LANGS = [("en", 0.6), ("de", 0.15), ("es", 0.1), ("fr", 0.1), ("ru", 0.05)]
# The engine caps these per language (10 growing trees, 100 prompts in review): a real campaign
# has exactly that many open, however big its history, and they are its newest trees.
CAPPED_PER_LANG = [("growing", 10), ("initial_prompt_review", 80)]
# Everything else, by share; "full" trees have the 12 messages of the goal shape.
STATES = [
    ("ready_for_export", 0.80),
    ("prompt_lottery_waiting", 0.06),
    ("aborted_low_grade", 0.05),
    ("ranking", 0.03),
    ("halted_by_moderator", 0.02),
    ("backlog_ranking", 0.02),
    ("ready_for_scoring", 0.01),
    ("scoring_failed", 0.01),
]
FULL_STATES = {"ready_for_export", "ranking", "ready_for_scoring", "backlog_ranking", "scoring_failed",
               "halted_by_moderator"}
DAYS = 180
# Naive UTC: ts() is the hottest call of the fill, and isoformat is far cheaper than strftime.
NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)


def ts(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: UTC, no zone, microseconds (NOW is naive UTC)."""
    return value.isoformat(" ", "microseconds")


def pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


class Filler:
    """Generates rows in Python and writes them with executemany in large chunks."""


    def __init__(self, con: sqlite3.Connection, n_users: int, seed: int = 7) -> None:
        self.con = con
        self.rng = random.Random(seed)
        self.n_users = n_users
        self.ids = {"messages": 0, "trees": 0, "tasks": 0, "chat": 0}
        self.points = [0.0] * (n_users + 1)
        # (user, UTC day) -> points: score_daily, which the engine keeps equal to the day's events.
        self.daily: dict[tuple[int, str], float] = defaultdict(float)
        self.rows: dict[str, list[tuple]] = defaultdict(list)
        self.counts: dict[str, int] = {}
        self.sql = {
            "message_trees": "INSERT INTO message_trees (id, state, lang, state_before_halt, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?)",
            "messages": "INSERT INTO messages (id, tree_id, parent_id, role, text, author_id, lang, depth,"
            " review_count, review_result, rank, synthetic, model_name, deleted, created_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            "labels": "INSERT INTO labels (message_id, user_id, name, value, mode, created_at) VALUES (?,?,?,?,?,?)",
            "rankings": "INSERT INTO rankings (parent_id, user_id, ordered_ids, not_rankable, agreement, created_at)"
            " VALUES (?,?,?,?,?,?)",
            "reactions": "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES (?,?,?,?)",
            "score_events": "INSERT INTO score_events (user_id, points, reason, message_id, created_at)"
            " VALUES (?,?,?,?,?)",
            "tasks": "INSERT INTO tasks (id, kind, user_id, target_message_id, tree_id, lang, state, payload,"
            " created_at, expires_at, done_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            "chat_conversations": "INSERT INTO chat_conversations (id, user_id, active, model_name, system_prompt,"
            " prompt_tokens, completion_tokens, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            "chat_messages": "INSERT INTO chat_messages (id, conversation_id, parent_id, role, text, state,"
            " model_name, kept, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            "chat_preferences": "INSERT INTO chat_preferences (chosen_id, rejected_id, created_at) VALUES (?,?,?)",
        }

    # -- plumbing

    def add(self, table: str, row: tuple) -> None:
        self.rows[table].append(row)  # flushed every few hundred trees by run()

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.rows):
            rows = self.rows.get(name)
            if rows:
                self.con.executemany(self.sql[name], rows)
                self.counts[name] = self.counts.get(name, 0) + len(rows)
                rows.clear()

    def user(self, exclude: set[int] | tuple = ()) -> int:
        while True:
            u = self.rng.randint(1, self.n_users)
            if u not in exclude:
                return u

    def users(self, k: int, exclude: set[int]) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < k:
            u = self.user(exclude)
            if u not in chosen:
                chosen.append(u)
        return chosen

    def score(self, user: int, points: float, reason: str, message_id: int | None, when: datetime) -> None:
        when = min(when, NOW)
        self.points[user] += points
        stamp = ts(when)
        self.daily[(user, stamp[:10])] += points
        self.add("score_events", (user, points, reason, message_id, stamp))

    # -- users

    def fill_users(self) -> None:
        rng = self.rng
        rows = []
        for i in range(1, self.n_users + 1):
            lang = pick(rng, LANGS)
            created = NOW - timedelta(days=rng.uniform(0, DAYS + 30))
            rows.append(
                (i, 10**17 + i * 7919, f"user{i}", lang, int(rng.random() < 0.002), int(rng.random() < 0.005),
                 0, rng.randint(0, 30), ts(NOW - timedelta(hours=rng.uniform(0, 24 * 30))), ts(created))
            )
        self.con.executemany(
            "INSERT INTO users (id, discord_id, display_name, locale, banned, opted_out, synthetic, streak_days,"
            " last_active_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        self.counts["users"] = len(rows)

    # -- trees

    def message(self, tree, parent, role, depth, when, lang, *, reviewed=True, accepted=True, rank=None,
                author_exclude=()) -> tuple[int, int]:
        rng = self.rng
        when = min(when, NOW - timedelta(minutes=1))
        self.ids["messages"] += 1
        mid = self.ids["messages"]
        author = self.user(author_exclude)
        review_count = 3 if reviewed else rng.randint(0, 2)
        result = (1 if accepted else 0) if reviewed else None
        deleted = int(rng.random() < 0.01)
        synthetic = int(role == "assistant" and rng.random() < 0.05)
        text = f"{role} message {mid} " + "lorem ipsum dolor sit amet " * rng.randint(1, 12)
        self.add(
            "messages",
            (mid, tree, parent, role, text, author, lang, depth, review_count, result, rank, synthetic,
             "smollm2-135m" if synthetic else None, deleted, ts(when)),
        )
        kind = "initial_prompt" if parent is None else f"{role}_reply"
        points = {"initial_prompt": 0.1, "assistant_reply": 4.0, "prompter_reply": 1.0}[kind]
        self.score(author, points, kind, mid, when)
        if result == 1:
            self.score(author, points, f"{kind}_accepted", mid, when + timedelta(hours=2))
        # Reviews: spam for every message, quality for replies; a rejected message got spam votes.
        for reviewer in self.users(review_count, {author}):
            at = min(when + timedelta(minutes=rng.uniform(5, 600)), NOW)
            spam = 1.0 if result == 0 and rng.random() < 0.8 else 0.0
            self.add("labels", (mid, reviewer, "spam", spam, "simple", ts(at)))
            self.add("labels", (mid, reviewer, "lang_mismatch", 0.0, "simple", ts(at)))
            if parent is not None:
                self.add("labels", (mid, reviewer, "quality", rng.choice((0, 0.25, 0.5, 0.75, 1.0)), "simple", ts(at)))
            self.score(reviewer, 1.0, "label_simple", mid, at)
        if rng.random() < 0.3:
            for voter in self.users(rng.randint(1, 3), {author}):
                emoji = rng.choices(("+1", "-1", "red_flag", "laugh"), (70, 20, 2, 8))[0]
                self.add("reactions", (mid, voter, emoji, ts(min(NOW, when + timedelta(hours=rng.uniform(0, 48))))))
        return mid, author

    def rank_children(self, tree: int, lang: str, parent: int, children: list[int], authors: set[int],
                      when: datetime, rankers: int, scored: bool) -> None:
        rng = self.rng
        consensus = children[:]
        rng.shuffle(consensus)
        for user in self.users(rankers, authors):
            order = consensus[:]
            if rng.random() < 0.3:  # some disagreement
                i = rng.randrange(len(order) - 1)
                order[i], order[i + 1] = order[i + 1], order[i]
            at = min(when + timedelta(hours=rng.uniform(1, 72)), NOW)
            agreement = (1.0 if order == consensus else 0.67) if scored else None
            self.ids["tasks"] += 1
            self.add("tasks", (self.ids["tasks"], "rank_assistant_replies", user, parent, tree, lang, "done",
                               json.dumps({"reply_ids": children}), ts(at - timedelta(minutes=3)),
                               ts(at + timedelta(hours=45)), ts(at)))
            self.add("rankings", (parent, user, json.dumps(order), 0, agreement, ts(at)))
            self.score(user, 1.0, "ranking", None, at)
        if scored:
            for place, mid in enumerate(consensus):
                # The rank column is on the child row already written: fix it up after the flush.
                self.pending_ranks.append((place, mid))

    def fill_tree(self, state: str, lang: str, start: datetime) -> None:
        rng = self.rng
        self.ids["trees"] += 1
        tree = self.ids["trees"]
        halted_from = "growing" if state == "halted_by_moderator" else None
        self.add("message_trees", (tree, state, lang, halted_from, ts(start), ts(start + timedelta(days=1))))
        if state == "initial_prompt_review":
            self.message(tree, None, "prompter", 0, start, lang, reviewed=False)
            return
        prompt, prompt_author = self.message(tree, None, "prompter", 0, start, lang,
                                             accepted=state != "aborted_low_grade")
        if state in ("aborted_low_grade", "prompt_lottery_waiting"):
            return
        full = state in FULL_STATES
        scored = state == "ready_for_export"
        when = start + timedelta(hours=1)
        n_assist = 3 if full else rng.randint(1, 3)
        assistants = []
        siblings = {prompt_author}  # one reply per user per parent
        for _ in range(n_assist):
            when += timedelta(minutes=rng.uniform(10, 300))
            # In a growing tree the newest replies still wait for their reviews.
            reviewed = full or rng.random() < 0.6
            accepted = rng.random() < 0.93
            mid, author = self.message(tree, prompt, "assistant", 1, when, lang, reviewed=reviewed, accepted=accepted,
                                       author_exclude=siblings)
            siblings.add(author)
            assistants.append((mid, reviewed and accepted))
        accepted_children = [m for m, ok in assistants if ok]
        if len(accepted_children) >= 2 and state != "growing":
            rankers = 3 if state != "ranking" else rng.randint(0, 2)
            self.rank_children(tree, lang, prompt, accepted_children, siblings, when, rankers, scored)
        leaf_done: list[int] = []
        for mid, ok in assistants:
            if not ok or (not full and rng.random() < 0.5):
                continue
            when += timedelta(minutes=rng.uniform(10, 300))
            reply, _ = self.message(tree, mid, "prompter", 2, when, lang, reviewed=full or rng.random() < 0.7)
            leaves: list[int] = []
            leaf_authors: set[int] = set()
            # 2 + 2 + 1 leaves: the goal size of 12 messages.
            for _ in range((2 if len(leaf_done) < 2 else 1) if full else rng.randint(0, 2)):
                when += timedelta(minutes=rng.uniform(10, 300))
                reviewed, accepted = full or rng.random() < 0.5, rng.random() < 0.93
                leaf, author = self.message(tree, reply, "assistant", 3, when, lang, reviewed=reviewed,
                                            accepted=accepted, author_exclude=leaf_authors)
                leaf_authors.add(author)
                if reviewed and accepted:
                    leaves.append(leaf)
            leaf_done.append(reply)
            if full and len(leaves) == 2:
                rankers = 3 if state != "ranking" else rng.randint(0, 2)
                self.rank_children(tree, lang, reply, leaves, leaf_authors, when, rankers, scored)

    def fill_tasks(self, n_trees: int) -> None:
        """Open tasks of active users and a history of skips, as a running campaign has."""
        rng = self.rng
        kinds = ("rank_assistant_replies", "label_assistant_reply", "label_prompter_reply", "assistant_reply",
                 "prompter_reply", "label_initial_prompt")
        for _ in range(max(1, n_trees // 20)):
            self.ids["tasks"] += 1
            state = rng.choices(("offered", "skipped", "expired", "done"), (20, 30, 20, 30))[0]
            created = NOW - timedelta(hours=rng.uniform(0, 24 * 14 if state != "offered" else 40))
            target = rng.randint(1, self.ids["messages"])
            self.add(
                "tasks",
                (self.ids["tasks"], rng.choice(kinds), self.user(), target, None, pick(rng, LANGS), state, "{}",
                 ts(created), ts(created + timedelta(hours=48)),
                 ts(created + timedelta(minutes=5)) if state == "done" else None),
            )

    def fill_chats(self, n: int) -> None:
        rng = self.rng
        for cid in range(1, n + 1):
            user = self.user()
            start = NOW - timedelta(days=rng.uniform(0, 60))
            self.add("chat_conversations", (cid, user, 0, "smollm2-135m", "Be brief." if cid % 3 == 0 else None,
                                            300, 200, ts(start), ts(start)))
            parent = None
            for turn in range(3):
                self.ids["chat"] += 1
                q = self.ids["chat"]
                self.add("chat_messages", (q, cid, parent, "user", f"question {turn}", "complete", None, 1, ts(start)))
                self.ids["chat"] += 2
                kept, dropped = self.ids["chat"] - 1, self.ids["chat"]
                for mid, keep in ((dropped, 0), (kept, 1)):
                    self.add("chat_messages", (mid, cid, q, "assistant", f"answer {turn} {keep}", "complete",
                                               "smollm2-135m", keep, ts(start)))
                self.add("chat_preferences", (kept, dropped, ts(start)))
                parent = kept

    def run(self, n_trees: int) -> dict[str, int]:
        self.pending_ranks: list[tuple[int, int]] = []
        self.fill_users()
        rng = self.rng
        capped = [(state, lang) for state, per_lang in CAPPED_PER_LANG for lang, _ in LANGS for _ in range(per_lang)]
        capped = capped[: n_trees // 10]
        rng.shuffle(capped)
        history = n_trees - len(capped)
        # Tree ids grow with time: the history spreads over DAYS, the open trees are from the last days.
        for i in range(history):
            if i % 500 == 0:
                self.flush()
            start = NOW - timedelta(days=DAYS * (1 - i / history) + 3, hours=rng.uniform(0, 12))
            self.fill_tree(pick(rng, STATES), pick(rng, LANGS), start)
        for i, (state, lang) in enumerate(capped):
            self.fill_tree(state, lang, NOW - timedelta(days=3 * (1 - i / len(capped)), minutes=rng.uniform(0, 60)))
        self.fill_tasks(n_trees)
        self.fill_chats(max(10, n_trees // 50))
        self.flush()
        self.con.executemany("UPDATE messages SET rank = ? WHERE id = ?", self.pending_ranks)
        self.con.executemany(
            "UPDATE users SET points = ? WHERE id = ?",
            [(p, i) for i, p in enumerate(self.points) if i and p],
        )
        self.con.executemany("INSERT INTO score_daily (user_id, day, points) VALUES (?,?,?)",
                             [(user, day, p) for (user, day), p in self.daily.items()])
        self.counts["score_daily"] = len(self.daily)
        return dict(self.counts)


def fill(path: Path, scale: float, *, analyze: bool = False) -> dict:
    engine = db.create_engine(f"sqlite+aiosqlite:///{path}")

    async def schema() -> None:
        try:
            await db.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(schema())
    started = time.perf_counter()
    con = sqlite3.connect(path, isolation_level=None)
    # Bulk-load settings; the bot's own settings (WAL, foreign keys) come back with its next connection.
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA foreign_keys=OFF")
    con.execute("PRAGMA cache_size=-400000")
    # Named indexes are cheaper to build once over the loaded rows than to maintain row by row.
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        con.execute(f'DROP INDEX "{name}"')
    con.execute("BEGIN")
    filler = Filler(con, n_users=max(100, int(10_000 * scale)))
    counts = filler.run(max(10, int(100_000 * scale)))
    con.execute("COMMIT")
    loaded = time.perf_counter()
    for _name, sql in indexes:
        con.execute(sql)
    # The bot never runs ANALYZE, so by default neither does the bench: the planner works as in
    # production, without statistics.
    if analyze:
        con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    done = time.perf_counter()
    return {"fill_seconds": round(done - started, 1), "index_seconds": round(done - loaded, 1), "rows": counts,
            "db_mb": round(path.stat().st_size / 2**20, 1)}


# ---------------------------------------------------------------- measurements


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {"p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": round(ordered[-1] * 1000, 2), "n": len(ordered)}


def export_child(path: Path, fmt: str) -> dict:
    """Run in a fresh process: the export's RSS without the fill's."""
    from bot.labelling.export import export

    async def go() -> dict:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = db.session_factory(engine)
        out = Path(tempfile.mkdtemp()) / f"bench.{fmt}.jsonl"
        try:
            started, cpu = time.perf_counter(), time.process_time()
            lines = await export(sessions, fmt, out, salt="bench")
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await engine.dispose()
        size = out.stat().st_size
        out.unlink()
        return {"lines": lines, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
                "file_mb": round(size / 2**20, 1)}

    result = asyncio.run(go())
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM first: ru_maxrss survives exec, so a child started by a big
    parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_export(path: Path) -> dict:
    results = {}
    for fmt in ("oasst-messages", "oasst-trees", "preferences", "sft"):
        proc = subprocess.run(
            [sys.executable, __file__, "--export-child", str(path), fmt],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        results[fmt] = json.loads(proc.stdout)
    messages = results["oasst-messages"]["lines"]
    # The trees file holds exactly the messages of the flat file: its rate counts those messages.
    for fmt in ("oasst-messages", "oasst-trees"):
        results[fmt]["messages_per_s"] = round(messages / results[fmt]["seconds"])
        # Per CPU second: what the export costs, less sensitive to other work on the machine.
        results[fmt]["messages_per_cpu_s"] = round(messages / results[fmt]["cpu_seconds"])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100k trees, 10k users")
    parser.add_argument("--db", type=Path, help="database file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true", help="measure an existing --db without filling it")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    parser.add_argument("--repeat", type=int, default=200, help="samples per timed operation")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE after the fill (the bot does not)")
    parser.add_argument("--export-child", nargs=2, metavar=("DB", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.export_child:
        print(json.dumps(export_child(Path(args.export_child[0]), args.export_child[1])))
        return 0

    workdir = None if args.db else Path(tempfile.mkdtemp(prefix="oabot-bench-"))
    path = args.db or workdir / "bench.db"
    # Figures from a busy machine are not comparable: say how busy it was.
    report: dict = {"scale": args.scale, "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                    "calibration_ms": calibration_ms()}
    try:
        if args.reuse:
            if not path.exists():
                parser.error(f"{path} does not exist")
        else:
            # A stale -wal beside a new database file would be read as part of it.
            for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                stale.unlink(missing_ok=True)
            report["fill"] = fill(path, args.scale, analyze=args.analyze)
        report["engine"] = measure_engine(path, args.repeat)
        if not args.skip_export:
            report["export"] = measure_export(path)
        report["loadavg_end"] = os.getloadavg()
    finally:
        if workdir is not None and not args.keep:
            for leftover in workdir.iterdir():
                leftover.unlink()
            workdir.rmdir()
    if workdir is None or args.keep:
        report["db"] = str(path)
    print(json.dumps(report, indent=2))
    return 0


def measure_engine(path: Path, repeat: int) -> dict:
    """Time the labelling service's calls as a cog makes them: one transaction each, committed."""
    from bot.config import LabellingSettings
    from bot.labelling.errors import LabellingError
    from bot.labelling.service import LabellingService
    from storage.enums import TaskKind

    async def go() -> dict:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = db.session_factory(engine)
        service = LabellingService(sessions, LabellingSettings(), rng=random.Random(3))
        rng = random.Random(11)
        results: dict = {}
        try:
            with sqlite3.connect(path) as con:
                people = con.execute("SELECT id, locale FROM users WHERE banned = 0").fetchall()
                messages = con.execute(
                    "SELECT id, author_id FROM messages WHERE deleted = 0 ORDER BY random() LIMIT ?", (repeat * 2,)
                ).fetchall()
            rng.shuffle(people)
            users = iter(people * 2)

            async def timed(call) -> tuple[float, object]:
                started = time.perf_counter()
                try:
                    outcome = await call
                except LabellingError as exc:
                    outcome = exc
                return time.perf_counter() - started, outcome

            # Untimed first calls: SQLAlchemy compiles and caches each statement once per process.
            warm = max(5, repeat // 20)
            # Task selection: fresh users (the engine rate-limits each one), in their language.
            samples, kinds, by_kind = [], {}, {}
            for _ in range(warm):
                user_id, lang = next(users)
                await timed(service.request_task(user_id, lang))
            # As the bot does once started (bot/app.py): long-lived objects leave the collector's reach.
            gc.freeze()
            for _ in range(repeat):
                user_id, lang = next(users)
                elapsed, offer = await timed(service.request_task(user_id, lang))
                samples.append(elapsed)
                kind = getattr(offer, "kind", None) or getattr(offer, "reason", type(offer).__name__)
                kinds[str(kind)] = kinds.get(str(kind), 0) + 1
                by_kind.setdefault(str(kind), []).append(elapsed)
            results["task_selection"] = {
                **percentiles(samples),
                "outcomes": kinds,
                "by_outcome": {k: percentiles(v) for k, v in sorted(by_kind.items())},
            }

            # Ranking submissions: get a ranking task (not timed), then submit it (timed).
            samples, outcomes, attempts = [], {}, 0
            while len(samples) < repeat + warm and attempts < (repeat + warm) * 5:
                attempts += 1
                user_id, lang = next(users)
                try:
                    offer = await service.request_task(user_id, lang, TaskKind.RANK_ASSISTANT_REPLIES)
                except LabellingError:
                    continue
                order = [reply.id for reply in offer.replies]
                rng.shuffle(order)
                elapsed, result = await timed(service.submit_ranking(offer.task_id, user_id, order))
                samples.append(elapsed)
                state = getattr(result, "tree_state", None) or getattr(result, "reason", "?")
                outcomes[str(state)] = outcomes.get(str(state), 0) + 1
            samples = samples[warm:]
            results["ranking_submission"] = (
                {**percentiles(samples), "tree_state_after": outcomes} if samples else {"error": "no ranking tasks"}
            )

            samples = []
            for message_id, author_id in messages[: repeat + warm]:
                voter = author_id
                while voter == author_id:
                    voter = rng.choice(people)[0]
                elapsed, _ = await timed(service.vote(voter, message_id, rng.choice(("+1", "-1"))))
                samples.append(elapsed)
            results["vote"] = percentiles(samples[warm:])

            for period in ("week", "day", "month", "all"):
                await timed(service.leaderboard(period))
                samples = [(await timed(service.leaderboard(period)))[0] for _ in range(max(20, repeat // 4))]
                results[f"leaderboard_{period}"] = percentiles(samples)
        finally:
            await engine.dispose()
        return results

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())

"""The same models, migrations and services on PostgreSQL, by changing only the URL.

Needs a server: OABOT_TEST_POSTGRES_URL=postgresql+asyncpg://user@host:port (.ci/run starts one).
Each test gets a database of its own.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from bot.config import LabellingSettings
from bot.labelling.export import export
from bot.labelling.simulator import simulate
from storage import db
from storage.models import Base, Reaction, User

SERVER = os.environ.get("OABOT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(SERVER is None, reason="no PostgreSQL server given (.ci/run starts one)")


@pytest.fixture
async def engine():
    assert SERVER is not None
    name = f"oabot_test_{uuid.uuid4().hex[:12]}"
    admin = db.create_engine(str(make_url(SERVER).set(database="postgres")))
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = db.create_engine(str(make_url(SERVER).set(database=name)))
    yield engine
    await engine.dispose()
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


async def test_migrations_round_trip_and_match_the_models(engine):
    await db.upgrade(engine)
    await db.downgrade(engine, "base")
    await db.upgrade(engine)
    assert (await db.current_revision(engine))[0] == (await db.current_revision(engine))[1]

    def check(connection):
        assert {"users", "messages", "tasks", "score_events"} <= set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(check) == []


async def test_duplicate_votes_are_refused(engine):
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    async with sessions() as session:
        session.add(User(discord_id=1))
        await session.commit()
    async with sessions() as session:
        user = await session.scalar(select(User))
        assert user.created_at.tzinfo is not None
        from storage.models import Message, MessageTree

        tree = MessageTree(lang="en")
        session.add(tree)
        await session.flush()
        message = Message(tree_id=tree.id, role="prompter", text="hi", lang="en", author_id=user.id)
        session.add(message)
        await session.flush()
        session.add(Reaction(message_id=message.id, user_id=user.id, emoji="+1"))
        await session.flush()
        session.add(Reaction(message_id=message.id, user_id=user.id, emoji="+1"))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_a_simulated_campaign_and_its_export(engine, tmp_path):
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    report = await simulate(sessions, LabellingSettings(), users=24, prompts=4, trolls=2, seed=3)
    assert report.trees_by_state.get("ready_for_export", 0) >= 1
    out = tmp_path / "trees.jsonl"
    lines = await export(sessions, "oasst-trees", out, salt="test")
    assert lines == report.trees_by_state["ready_for_export"]
    first = json.loads(out.read_text().splitlines()[0])
    assert first["tree_state"] == "ready_for_export" and first["prompt"]["replies"]

    # Daily totals (upserted on PostgreSQL too) match the events, and period boards built on them
    # equal the events of the exact window.
    from collections import defaultdict
    from datetime import timedelta

    from bot.labelling.service import LabellingService
    from storage.models import ScoreDaily, ScoreEvent

    async with sessions() as session:
        events = (await session.execute(select(ScoreEvent.user_id, ScoreEvent.points, ScoreEvent.created_at))).all()
        daily = {(u, d): p for u, d, p in (await session.execute(
            select(ScoreDaily.user_id, ScoreDaily.day, ScoreDaily.points))).all()}
    per_day: dict = defaultdict(float)
    for user_id, points, created_at in events:
        per_day[(user_id, created_at.date())] += points
    assert daily.keys() == per_day.keys()
    assert all(abs(daily[key] - points) < 1e-9 for key, points in per_day.items())
    now = max(created_at for _, _, created_at in events) + timedelta(hours=20)
    service = LabellingService(sessions, LabellingSettings(), clock=lambda: now)
    for period, span in (("day", timedelta(days=1)), ("week", timedelta(days=7))):
        expected: dict = defaultdict(float)
        for user_id, points, created_at in events:
            if created_at >= now - span:
                expected[user_id] += points
        board = await service.leaderboard(period, limit=100, include_synthetic=True)
        assert {e.user_id: e.points for e in board} == {u: round(p, 2) for u, p in expected.items()}
        for entry in board[:3]:
            assert (await service.user_stats(entry.user_id)).ranks[period][1] == entry.points

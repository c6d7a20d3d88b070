"""The schema exists only through migrations, and the database refuses double counting."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from storage import db
from storage.enums import Role, TreeState
from storage.models import Base, Label, Message, MessageTree, Ranking, Reaction, User


@pytest.fixture
async def engine(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/nested/dir/test.db")
    yield engine
    await engine.dispose()


async def _tables(engine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_downgrade_upgrade(engine):
    await db.upgrade(engine)
    tables = await _tables(engine)
    assert {"users", "messages", "message_trees", "tasks", "labels", "rankings", "reactions"} <= tables
    assert await db.current_revision(engine) == ("0005_job_leases", "0005_job_leases")

    await db.upgrade(engine)  # a second upgrade is a no-op
    await db.downgrade(engine, "base")
    assert await _tables(engine) == {"alembic_version"}
    assert (await db.current_revision(engine))[0] is None

    await db.upgrade(engine)
    assert await _tables(engine) == tables


async def test_migrations_match_models(engine):
    await db.upgrade(engine)

    def diff(connection):
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_sqlite_pragmas(engine):
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 30_000


async def _tree_with_reply(session):
    author, voter = User(discord_id=1, display_name="a"), User(discord_id=2, display_name="v")
    tree = MessageTree(lang="en", state=TreeState.GROWING)
    session.add_all([author, voter, tree])
    await session.flush()
    prompt = Message(tree_id=tree.id, role=Role.PROMPTER, text="Why is the sky blue?", author_id=author.id, lang="en")
    session.add(prompt)
    await session.flush()
    reply = Message(
        tree_id=tree.id, parent_id=prompt.id, role=Role.ASSISTANT, text="Rayleigh scattering.",
        author_id=voter.id, lang="en", depth=1,
    )
    session.add(reply)
    await session.flush()
    return author, voter, prompt, reply


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda a, v, p, r: Reaction(message_id=r.id, user_id=a.id, emoji="+1"),
        lambda a, v, p, r: Label(message_id=r.id, user_id=a.id, name="spam", value=0),
        lambda a, v, p, r: Ranking(parent_id=p.id, user_id=a.id, ordered_ids=[r.id]),
        lambda a, v, p, r: Message(tree_id=p.tree_id, parent_id=p.id, role=Role.ASSISTANT, text="x",
                                   author_id=v.id, lang="en", depth=1),
    ],
    ids=["reaction", "label", "ranking", "reply"],
)
async def test_database_refuses_double_counting(engine, duplicate):
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    async with sessions() as session:
        a, v, p, r = await _tree_with_reply(session)
        first = duplicate(a, v, p, r)
        if not isinstance(first, Message):
            session.add(first)
            await session.flush()
        session.add(duplicate(a, v, p, r))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_foreign_keys_are_enforced(engine):
    await db.upgrade(engine)
    async with db.session_factory(engine)() as session:
        session.add(Reaction(message_id=424242, user_id=1, emoji="+1"))
        with pytest.raises(IntegrityError):
            await session.flush()


async def test_datetimes_come_back_timezone_aware(engine):
    await db.upgrade(engine)
    async with db.session_factory(engine)() as session:
        session.add(User(discord_id=5))
        await session.commit()
    async with db.session_factory(engine)() as session:
        user = (await session.execute(select(User))).scalar_one()
        assert user.created_at.tzinfo is not None

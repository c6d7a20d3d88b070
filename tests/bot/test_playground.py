"""The playground's demo data: trees in different states, written through the engine, so a new member finds
work of every kind at once; a playground started again on its database adds nothing."""

from __future__ import annotations

from sqlalchemy import select

from bot.config import Settings
from bot.labelling.service import LabellingService
from bot.playground import prepare_database
from storage import db
from storage.enums import TaskKind, TreeState
from storage.models import MessageTree, User


async def test_demo_trees_give_every_kind_of_task_work(tmp_path):
    settings = Settings(database={"url": f"sqlite+aiosqlite:///{tmp_path}/p.db"})
    assert await prepare_database(settings, demo=True) is True
    assert await prepare_database(settings, demo=True) is False  # started again: nothing added

    engine = db.create_engine(settings.database.url)
    try:
        sessions = db.session_factory(engine)
        async with sessions() as session:
            states = sorted((await session.scalars(select(MessageTree.state))).all())
            demo_users = (await session.scalars(select(User).where(User.synthetic.is_(True)))).all()
        assert states == sorted([TreeState.RANKING, TreeState.GROWING, TreeState.INITIAL_PROMPT_REVIEW])
        assert len(demo_users) == 5  # off the leaderboard

        service = LabellingService(sessions, settings.labelling)
        for number, kind in enumerate([TaskKind.INITIAL_PROMPT, TaskKind.ASSISTANT_REPLY, TaskKind.PROMPTER_REPLY,
                                       TaskKind.LABEL_INITIAL_PROMPT, TaskKind.LABEL_ASSISTANT_REPLY,
                                       TaskKind.RANK_ASSISTANT_REPLIES]):
            member = await service.get_or_create_user(1000 + number, display_name=f"member-{number}")
            offer = await service.request_task(member.id, kinds=kind)
            assert offer.kind == kind
    finally:
        await engine.dispose()

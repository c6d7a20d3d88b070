"""The export's schemas (tests/labelling/export_schemas.py) hold for every format and reject what the
documented layouts rule out, so a file that passes them is a real export."""

from __future__ import annotations

import pytest

from bot.labelling.export import FORMATS
from storage import db
from tests.labelling.export_schemas import check_lines
from tests.labelling.test_export import populate, run


@pytest.fixture
async def world(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/data/test.db")
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    await populate(sessions)
    yield sessions, tmp_path
    await engine.dispose()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_every_format_passes_its_schema(world, fmt):
    sessions, tmp_path = world
    records = await run(sessions, tmp_path, fmt, include_deleted=fmt.startswith("oasst"))
    assert records
    check_lines(fmt, records)


async def test_schemas_reject_broken_records(world):
    sessions, tmp_path = world
    tree = (await run(sessions, tmp_path, "oasst-trees"))[0]
    broken = {**tree, "prompt": {**tree["prompt"], "role": "narrator"}}
    with pytest.raises(AssertionError, match="narrator"):
        check_lines("oasst-trees", [broken])
    reply = tree["prompt"]["replies"][0]
    nested = {**tree, "prompt": {**tree["prompt"], "replies": [{**reply, "review_count": -1}]}}
    with pytest.raises(AssertionError, match="review_count"):
        check_lines("oasst-trees", [nested])
    sft = (await run(sessions, tmp_path, "sft"))[0]
    with pytest.raises(AssertionError):
        check_lines("sft", [{**sft, "messages": sft["messages"][:-1] + [{"role": "user", "content": "x"}]}])
    with pytest.raises(AssertionError, match="message_id"):
        check_lines("oasst-messages", [{"text": "no ids"}])

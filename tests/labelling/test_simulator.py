"""The campaign simulator: it ends by itself, finishes trees, and trolls agree less than honest users."""

from __future__ import annotations

import json

from bot.cli import main
from bot.config import LabellingSettings
from bot.labelling.simulator import prepare_database_file, simulate
from storage import db


async def _run(tmp_path, name, settings=None, **kwargs):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/{name}.db")
    await db.upgrade(engine)
    try:
        return await simulate(db.session_factory(engine), settings or LabellingSettings(), **kwargs)
    finally:
        await engine.dispose()


async def test_campaign_runs_to_the_end_and_separates_trolls(tmp_path):
    # The acceptance run: 15 prompts through 10 growing slots needs the lottery to promote.
    report = await _run(tmp_path, "a", users=40, prompts=15, trolls=4, seed=7)
    assert report.stop_reason == "no work left for any user"
    assert report.unfinished == {}
    assert sum(report.trees_by_state.values()) == 15
    assert report.trees_by_state["ready_for_export"] >= 10
    # Random rankings agree about half the time with the other rankings; honest ones far more.
    assert report.honest_mean_agreement > report.troll_mean_agreement + 0.1
    assert report.agreement_gap == round(report.honest_mean_agreement - report.troll_mean_agreement, 3)
    assert report.human_actions_per_exported_tree > 0
    # The quality of the data: no spam through, few honest messages lost, no dangling user turns, and
    # full reviews by Open-Assistant's probabilities (always for prompts and assistant replies).
    assert report.spam_accepted_share == 0
    assert report.honest_messages_rejected_share < 0.1
    assert report.unanswered_prompter_turns == 0
    assert report.label_rows_full > 10 * report.label_rows_simple > 0


async def test_same_seed_same_campaign(tmp_path):
    first = await _run(tmp_path, "b", users=10, prompts=2, trolls=1, seed=5)
    second = await _run(tmp_path, "c", users=10, prompts=2, trolls=1, seed=5)
    assert first.as_dict() == second.as_dict()


async def test_prompts_beyond_the_review_queue_are_written_as_room_frees(tmp_path):
    settings = LabellingSettings(max_prompts_in_review=2, max_active_trees_per_language=1)
    report = await _run(tmp_path, "q", settings, users=12, prompts=4, trolls=0, seed=4)
    assert sum(report.trees_by_state.values()) == 4
    assert report.stop_reason == "no work left for any user"


async def test_too_few_users_stall_and_the_report_says_why(tmp_path):
    report = await _run(tmp_path, "d", users=4, prompts=2, trolls=0, seed=1)
    assert report.stop_reason == "no work left for any user"
    assert report.unfinished
    assert all(":" in why for why in report.unfinished.values())


def test_cli_runs_exports_and_writes_json(tmp_path, capsys):
    database, out, report_file = tmp_path / "sim.db", tmp_path / "sim.jsonl", tmp_path / "sim.json"
    args = ["simulate", "--users", "10", "--prompts", "2", "--trolls", "1", "--seed", "3", "--db", str(database),
            "--export", str(out), "--json", str(report_file)]
    assert main(args) == 0
    report = json.loads(report_file.read_text())
    lines = out.read_text().splitlines()
    assert len(lines) == report["exported_trees"] == report["exported_lines"] > 0
    assert all(json.loads(line)["tree_state"] == "ready_for_export" for line in lines)
    assert "trees per state" in capsys.readouterr().out
    # Running again replaces the earlier simulation database.
    assert main(args) == 0


def test_a_database_with_real_users_is_never_overwritten(tmp_path):
    import sqlite3

    path = tmp_path / "live.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, synthetic BOOLEAN)")
        connection.execute("INSERT INTO users (synthetic) VALUES (0)")
    try:
        prepare_database_file(str(path))
    except ValueError as exc:
        assert "real users" in str(exc)
    else:
        raise AssertionError("a live database was accepted")
    assert path.exists()


async def test_daily_totals_equal_the_events_of_each_day(tmp_path):
    # score_daily is what period leaderboards read: after a whole campaign it must hold exactly the
    # sum of each user's score events per UTC day (test_points checks a campaign over several days).
    from collections import defaultdict

    import pytest
    from sqlalchemy import select

    from storage.models import ScoreDaily, ScoreEvent

    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/daily.db")
    await db.upgrade(engine)
    try:
        sessions = db.session_factory(engine)
        await simulate(sessions, LabellingSettings(), users=20, prompts=4, trolls=2, seed=9)
        async with sessions() as session:
            expected: dict = defaultdict(float)
            for user_id, points, created_at in (
                await session.execute(select(ScoreEvent.user_id, ScoreEvent.points, ScoreEvent.created_at))
            ).all():
                expected[(user_id, created_at.date())] += points
            daily = {(u, d): p for u, d, p in (await session.execute(
                select(ScoreDaily.user_id, ScoreDaily.day, ScoreDaily.points))).all()}
    finally:
        await engine.dispose()
    assert daily.keys() == expected.keys()
    for key, points in expected.items():
        assert daily[key] == pytest.approx(points)

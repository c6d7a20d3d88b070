"""The `oabot` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import configure_logging

NO_TOKEN = (
    "no Discord bot token: set the DISCORD_TOKEN environment variable "
    "(or `token` under [discord] in the config file), e.g. `DISCORD_TOKEN=... oabot run`"
)


class UsageError(Exception):
    """A problem with what the user asked for; printed on one line, exit code 2."""


def _version() -> str:
    try:
        return version("oabot")
    except PackageNotFoundError:
        return "unknown"


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.discord.token:
        raise UsageError(NO_TOKEN)
    from bot.app import preflight_model, serve
    from model_runner import ModelConfigError

    try:
        preflight_model(settings.chat)
    except ModelConfigError as exc:
        raise UsageError(f"[chat] model_path: {exc}") from None

    import discord

    try:
        asyncio.run(serve(settings))
    except discord.LoginFailure:
        raise UsageError("Discord refused the bot token: check DISCORD_TOKEN") from None
    return 0


def _with_engine(args: argparse.Namespace, action: Callable) -> object:
    from storage import db

    settings = _settings(args)

    async def go() -> object:
        engine = db.create_engine(settings.database.url, busy_timeout_ms=settings.database.busy_timeout_ms)
        try:
            return await action(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage import db

    _with_engine(args, lambda engine: db.upgrade(engine, args.revision))
    current, _head = _with_engine(args, db.current_revision)
    print(f"database at revision {current}")
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from storage import db

    _with_engine(args, lambda engine: db.downgrade(engine, args.revision))
    current, _head = _with_engine(args, db.current_revision)
    print(f"database at revision {current or 'base (empty)'}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from storage import db

    current, head = _with_engine(args, db.current_revision)
    status = "up to date" if current == head else f"behind: newest is {head}, run `oabot db upgrade`"
    print(f"{current or 'base (empty)'} ({status})")
    return 0


def cmd_db_revision(args: argparse.Namespace) -> int:
    import tempfile

    from storage import db

    # Compare the models with a scratch database at head, so the revision holds exactly the change.
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite+aiosqlite:///{scratch}/scratch.db"

        async def go() -> None:
            engine = db.create_engine(url)
            try:
                await db.upgrade(engine)
                async with engine.begin() as connection:
                    await connection.run_sync(db.write_revision, args.message)
            finally:
                await engine.dispose()

        asyncio.run(go())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bot.labelling.export import export
    from storage import db

    settings = _settings(args)
    states = args.state or ["ready_for_export"]

    async def go() -> int:
        engine = db.create_engine(settings.database.url, busy_timeout_ms=settings.database.busy_timeout_ms)
        try:
            return await export(
                db.session_factory(engine), args.format, args.output, lang=args.lang, states=states,
                include_deleted=args.include_deleted, raw_ids=args.raw_ids, salt=args.salt, progress=True,
            )
        finally:
            await engine.dispose()

    try:
        lines = asyncio.run(go())
    except ValueError as exc:  # unknown state or format, unusable salt file
        raise UsageError(str(exc)) from None
    print(f"wrote {lines} lines to {args.output}")
    return 0


def _add_export_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export", parents=[common], help="write the collected data as oasst1 trees/messages, preference pairs or SFT"
    )
    export.add_argument("--format", required=True, choices=["oasst-trees", "oasst-messages", "preferences", "sft"])
    export.add_argument("-o", "--output", required=True, metavar="FILE", help=".jsonl, or .jsonl.gz to compress")
    export.add_argument("--lang", action="append", metavar="LANG", help="only these languages (repeat or a,b)")
    export.add_argument(
        "--state", action="append", metavar="STATE", help="tree states (repeat or a,b; default ready_for_export)"
    )
    export.add_argument("--include-deleted", action="store_true", help="keep deleted messages (oasst formats)")
    export.add_argument("--raw-ids", action="store_true", help="Discord user ids instead of pseudonyms")
    export.add_argument(
        "--salt", help="salt of the pseudonyms (default: $OABOT_EXPORT_SALT, else export_salt beside the database)"
    )
    export.set_defaults(func=cmd_export)


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from bot.labelling.simulator import prepare_database_file, simulate
    from storage import db

    settings = _settings(args)
    if args.users < 1 or args.prompts < 1 or not 0 <= args.trolls <= args.users:
        raise UsageError("need --users >= 1, --prompts >= 1 and 0 <= --trolls <= --users")
    try:
        prepare_database_file(args.db)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def go():  # noqa: ANN202
        engine = db.create_engine(f"sqlite+aiosqlite:///{args.db}")
        try:
            await db.upgrade(engine)
            sessions = db.session_factory(engine)
            report = await simulate(sessions, settings.labelling, users=args.users, prompts=args.prompts,
                                    trolls=args.trolls, seed=args.seed)
            if args.export:
                from bot.labelling.export import export

                report.exported_lines = await export(sessions, "oasst-trees", args.export)
            return report
        finally:
            await engine.dispose()

    report = asyncio.run(go())
    print(report.summary())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report.as_dict(), handle, indent=2)
    return 0


def _add_simulate_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    simulate = commands.add_parser(
        "simulate", parents=[common], help="run a whole campaign with synthetic users to tune [labelling]"
    )
    simulate.add_argument("--users", type=int, default=40, help="synthetic users, trolls included (default 40)")
    simulate.add_argument("--prompts", type=int, default=15, help="initial prompts to write (default 15)")
    simulate.add_argument("--trolls", type=int, default=4, help="users who spam and judge at random (default 4)")
    simulate.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same run")
    simulate.add_argument("--db", required=True, metavar="PATH",
                          help="SQLite file for the run (an earlier simulation there is replaced)")
    simulate.add_argument("--export", metavar="FILE", help="also export the finished trees (oasst-trees)")
    simulate.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    simulate.set_defaults(func=cmd_simulate)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="settings file (TOML); default config.toml, a missing file means all defaults",
    )

    parser = argparse.ArgumentParser(
        prog="oabot",
        description="A Discord bot that collects Open-Assistant style training data and chats with a local model.",
    )
    parser.add_argument("--version", action="version", version=f"oabot {_version()}")
    parser.add_argument("--config", metavar="PATH", default="config.toml", help=common._actions[0].help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", parents=[common], help="start the bot (needs DISCORD_TOKEN)")
    run.set_defaults(func=cmd_run)

    database = commands.add_parser("db", parents=[common], help="database schema: upgrade, downgrade, current")
    db_commands = database.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_commands.add_parser("upgrade", parents=[common], help="bring the schema to the newest revision")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(func=cmd_db_upgrade)
    down = db_commands.add_parser("downgrade", parents=[common], help="undo migrations")
    down.add_argument("revision", nargs="?", default="-1", help="target revision, e.g. base (default: -1)")
    down.set_defaults(func=cmd_db_downgrade)
    current = db_commands.add_parser("current", parents=[common], help="show the schema revision")
    current.set_defaults(func=cmd_db_current)
    revision = db_commands.add_parser(
        "revision", parents=[common], help="(developers) write a new revision from changes to storage/models.py"
    )
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.set_defaults(func=cmd_db_revision)
    _add_export_parser(commands, common)
    _add_simulate_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError) as exc:
        print(f"oabot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

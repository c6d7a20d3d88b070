"""The `oabot` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import configure_logging


def program() -> str:
    """How the user called us, so advice names a command that works as typed (`.venv/bin/oabot` or `oabot`)."""
    called = sys.argv[0] if sys.argv and os.path.basename(sys.argv[0]) == "oabot" else ""
    if not called:
        return "oabot"
    try:
        relative = os.path.relpath(called)
    except ValueError:
        return called
    if relative.startswith(".."):
        return "oabot" if os.path.dirname(called) in os.environ.get("PATH", "").split(os.pathsep) else called
    return relative if os.sep in relative else f".{os.sep}{relative}"


def no_token_message() -> str:
    return ("no Discord bot token: set the DISCORD_TOKEN environment variable (or `token` under [discord] in "
            f"the config file), e.g. `DISCORD_TOKEN=... {program()} run`; without a token, "
            f"`{program()} playground` runs the bot in a browser")


class UsageError(Exception):
    """A problem with what the user asked for; printed on one line, exit code 2."""


def _version() -> str:
    try:
        return version("oabot")
    except PackageNotFoundError:
        return "unknown"


def _settings(args: argparse.Namespace) -> Settings:
    # An explicit --config must exist; the default config.toml is optional.
    explicit = getattr(args, "config", None)
    settings = load_settings(explicit or "config.toml", required=explicit is not None)
    if getattr(args, "db", None):
        settings = settings.model_copy(update={"database": settings.database.model_copy(
            update={"url": f"sqlite+aiosqlite:///{args.db}"})})
    configure_logging(settings.logging.level, settings.logging.format)
    return settings


def check_writable(path: str | os.PathLike[str], what: str = "output file") -> None:
    """Refuse an output path that cannot be written before any work (or overwriting) starts. Missing
    folders are fine (they are created) as long as the nearest existing one can be written."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{what} {target} is a folder")
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot write {what} {target}: {existing} is not a folder")
    if not os.access(existing, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"cannot write {what} {target}: permission denied")


def _database_error(url: str, exc: BaseException) -> UsageError:
    from storage.db import describe_error

    return UsageError(f"cannot open the database {_safe_url(url)}: {describe_error(exc)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 (config validation already refused unparseable URLs)
        return url


async def _check_database(settings: Settings) -> None:
    """Open and migrate the database before connecting anywhere: a server that is down, a folder that
    cannot be created or a locked file is one line, not a traceback from inside the bot."""
    from storage import db

    try:
        engine = db.create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout_seconds)
        try:
            await db.upgrade(engine)
        finally:
            await engine.dispose()
    except db.DATABASE_ERRORS as exc:
        raise _database_error(settings.database.url, exc) from None


def _preflight_model(settings: Settings) -> None:
    from bot.app import preflight_model
    from model_runner import ModelConfigError

    try:
        preflight_model(settings.chat)
    except ModelConfigError as exc:
        raise UsageError(f"[chat] {'model_path' if settings.chat.backend == 'llama_cpp' else 'openai_base_url'}: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.discord.token:
        raise UsageError(no_token_message())
    _preflight_model(settings)
    asyncio.run(_check_database(settings))

    import aiohttp
    import discord

    from bot.app import serve
    from model_runner import ModelConfigError

    api = settings.discord.api_base_url
    try:
        asyncio.run(serve(settings))
    except discord.LoginFailure:
        raise UsageError("Discord refused the bot token: check DISCORD_TOKEN") from None
    except discord.HTTPException as exc:
        raise UsageError(f"{api} answered HTTP {exc.status} when the bot logged in: is [discord] api_base_url "
                         "a Discord API (e.g. https://discord.com/api/v10)?") from None
    except (aiohttp.ClientError, discord.GatewayNotFound, discord.ConnectionClosed, OSError) as exc:
        raise UsageError(f"cannot reach Discord at {api}: {exc}; check the network and [discord] api_base_url "
                         "and gateway_url") from None
    except ModelConfigError as exc:  # e.g. the OpenAI-compatible server is down or refuses the key
        raise UsageError(f"[chat] {exc}") from None
    return 0


def cmd_playground(args: argparse.Namespace) -> int:
    from bot.playground import PlaygroundError, run_playground

    settings = _settings(args)
    _preflight_model(settings)
    database = Path(args.db or Path("data") / "playground.db")

    def announce(url: str) -> None:
        print(f"playground: open {url} in a browser (Ctrl-C stops it)", flush=True)

    async def go() -> None:
        from storage import db

        try:
            await run_playground(settings, host=args.host, port=args.port, database=database,
                                 demo=args.seed_demo, announce=announce)
        except db.DATABASE_ERRORS as exc:
            raise _database_error(f"sqlite+aiosqlite:///{database}", exc) from None

    try:
        asyncio.run(go())
    except PlaygroundError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _with_engine(args: argparse.Namespace, action: Callable) -> object:
    from storage import db

    settings = _settings(args)

    async def go() -> object:
        try:
            engine = db.create_engine(settings.database.url, busy_timeout=settings.database.busy_timeout_seconds)
            try:
                return await action(engine)
            finally:
                await engine.dispose()
        except db.DATABASE_ERRORS as exc:
            raise _database_error(settings.database.url, exc) from None

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


def _require_database_file(url: str) -> None:
    """A SQLite file to read must exist: opening it would create an empty one and leave it behind."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).expanduser().exists():
        raise UsageError(f"no database at {parsed.database}: give the bot's database with --db PATH "
                         "(or [database] url in --config)")


async def _existing_database(url: str, busy_timeout: float):  # noqa: ANN202 (AsyncEngine)
    """An engine on a database the bot has set up; a never-migrated one is a UsageError."""
    from storage import db

    engine = db.create_engine(url, busy_timeout=busy_timeout)
    try:
        current, _head = await db.current_revision(engine)
    except db.DATABASE_ERRORS as exc:
        await engine.dispose()
        raise _database_error(url, exc) from None
    if current is None:
        await engine.dispose()
        raise UsageError(f"{_safe_url(url)} was never set up by the bot (no tables): nothing to export; "
                         f"run the bot on it or `{program()} db upgrade` first")
    return engine


def cmd_export(args: argparse.Namespace) -> int:
    from bot.labelling.export import export
    from storage import db

    settings = _settings(args)
    states = args.state or ["ready_for_export"]
    check_writable(args.output)
    _require_database_file(settings.database.url)

    async def go() -> int:
        engine = await _existing_database(settings.database.url, settings.database.busy_timeout_seconds)
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
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {lines} lines to {args.output}")
    return 0


def _add_export_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export", parents=[common], help="write the collected data as oasst1 trees/messages, preference pairs, SFT or rated chat replies (KTO)"
    )
    export.add_argument("--db", metavar="PATH", help="the bot's SQLite database (default: [database] url of the config)")
    export.add_argument("--format", required=True,
                        choices=["oasst-trees", "oasst-messages", "preferences", "sft", "ratings"],
                        help="oasst1 trees or flat messages, DPO preference pairs, SFT conversations, or rated "
                             "chat replies (KTO)")
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
    if args.users < 1:
        raise UsageError("need --users >= 1")
    # Defaults scale with the users: 15 prompts and 4 trolls for 40 users.
    trolls = args.users // 10 if args.trolls is None else args.trolls
    prompts = max(1, args.users * 3 // 8) if args.prompts is None else args.prompts
    if prompts < 1 or not 0 <= trolls <= args.users:
        raise UsageError(f"need --prompts >= 1 and 0 <= --trolls <= --users ({args.users})")
    for path, what in ((args.export, "export file"), (args.json, "report file"), (args.db, "database")):
        if path:
            check_writable(path, what)
    try:
        prepare_database_file(args.db)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def go():  # noqa: ANN202
        engine = db.create_engine(f"sqlite+aiosqlite:///{args.db}")
        try:
            await db.upgrade(engine)
            sessions = db.session_factory(engine)
            report = await simulate(sessions, settings.labelling, users=args.users, prompts=prompts,
                                    trolls=trolls, seed=args.seed)
            if args.export:
                from bot.labelling.export import export

                report.exported_lines = await export(sessions, "oasst-trees", args.export)
            return report
        finally:
            await engine.dispose()

    report = asyncio.run(go())
    print(report.summary())
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report.as_dict(), handle, indent=2)
    return 0


def _add_simulate_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    simulate = commands.add_parser(
        "simulate", parents=[common], help="run a whole campaign with synthetic users to tune [labelling]"
    )
    simulate.add_argument("--users", type=int, default=40, help="synthetic users, trolls included (default 40)")
    simulate.add_argument("--prompts", type=int, help="initial prompts to write (default: 3 per 8 users, 15 for 40)")
    simulate.add_argument("--trolls", type=int,
                          help="users who spam and judge at random (default: one in ten users, 4 for 40)")
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
        help="settings file (TOML), which must exist; default: config.toml if there is one, else all defaults",
    )

    parser = argparse.ArgumentParser(
        prog="oabot",
        description="A Discord bot that collects Open-Assistant style training data and chats with a local model.",
    )
    parser.add_argument("--version", action="version", version=f"oabot {_version()}", help="show the version")
    parser.add_argument("--config", metavar="PATH", default=None, help=common._actions[0].help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", parents=[common], help="start the bot on Discord (needs DISCORD_TOKEN)",
                              description="Start the bot on Discord (needs DISCORD_TOKEN).")
    run.set_defaults(func=cmd_run)

    play = commands.add_parser(
        "playground", parents=[common], help="try the whole bot in a browser, without Discord or a token",
        description="Start a Discord emulator with a seeded guild (#tasks, a moderator and four members) and "
                    "the bot connected to it, then print the URL of a Discord-like web client.",
    )
    play.add_argument("--port", type=int, default=8765, help="port of the web client and emulator (default 8765)")
    play.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    play.add_argument("--db", metavar="PATH", help="SQLite file of the playground (default data/playground.db)")
    play.add_argument("--seed-demo", action=argparse.BooleanOptionalAction, default=True,
                      help="on a new database, add demo trees so every kind of task has work (default: yes)")
    play.set_defaults(func=cmd_playground)

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

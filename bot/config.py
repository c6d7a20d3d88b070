"""Settings: a TOML file (``--config``) overlaid by ``OABOT_`` environment variables.

Priority, highest first: ``DISCORD_TOKEN`` (token only), ``OABOT_SECTION__KEY`` variables,
the TOML file, the defaults below. Every key is documented in ``config.example.toml``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg/"

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class ConfigError(Exception):
    """A settings problem a user can fix; the CLI prints it on one line and exits with code 2."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DiscordSettings(Section):
    token: str | None = None
    api_base_url: str = DISCORD_API_BASE
    gateway_url: str = DISCORD_GATEWAY
    command_guild_ids: list[int] = []
    owner_ids: list[int] = []
    cogs: list[str] = [
        "cogs.chat", "cogs.labelling.task_cog", "cogs.labelling.tutorial_cog", "cogs.labelling.board",
        "cogs.labelling.member_settings", "cogs.labelling.help", "cogs.labelling.posts_cog",
        "cogs.labelling.post_reactions", "cogs.admin",
    ]
    sync_commands: bool = True
    # Sharding: None asks Discord how many shards to run, all in this process. To split a bot over
    # several processes on one PostgreSQL database, give each the same shard_count and its own shard_ids.
    shard_count: PosInt | None = None
    shard_ids: list[NonNegInt] | None = None
    # How long a channel message a member waits for (a chat reply, a task post) is retried through a
    # Discord outage; answers to slash commands and buttons are retried while their token lives (15 min).
    delivery_retry_minutes: PosFloat = 15.0

    @model_validator(mode="after")
    def _shards(self) -> DiscordSettings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("shard_ids needs shard_count (the total number of shards over all processes)")
        if not self.shard_ids:
            raise ValueError("shard_ids must list at least one shard")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError(f"shard_ids lists a shard twice (got {self.shard_ids})")
        if max(self.shard_ids) >= self.shard_count:
            raise ValueError(f"shard_ids must be below shard_count {self.shard_count} (got {self.shard_ids})")
        return self

    def handles_guild(self, guild_id: int) -> bool:
        """Whether this process runs the shard that receives this guild's events (Discord's rule)."""
        if self.shard_ids is None or self.shard_count is None:
            return True
        return (guild_id >> 22) % self.shard_count in self.shard_ids

    @field_validator("api_base_url", "gateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be an absolute URL such as https://host/api/v10")
        return value.rstrip("/") if not value.startswith("ws") else value


ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


class DatabaseSettings(Section):
    url: str = "sqlite+aiosqlite:///data/oabot.db"
    echo: bool = False
    # How long a request waits for a database that does not answer now: a lock another program holds on
    # the SQLite file, a PostgreSQL server restarting. Past it, members are told to try again.
    busy_timeout_seconds: PosFloat = 30

    @model_validator(mode="before")
    @classmethod
    def _milliseconds_of_old(cls, data: Any) -> Any:
        # Configs written before busy_timeout_seconds keep working.
        if isinstance(data, dict) and "busy_timeout_ms" in data and "busy_timeout_seconds" not in data:
            data = dict(data)
            data["busy_timeout_seconds"] = float(data.pop("busy_timeout_ms")) / 1000
        return data

    @field_validator("url")
    @classmethod
    def _async_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL; use e.g. sqlite+aiosqlite:///data/oabot.db or "
                             "postgresql+asyncpg://user@host/dbname") from None
        backend, driver = url.get_backend_name(), url.get_driver_name()
        if ASYNC_DRIVERS.get(backend) != driver:
            known = " or ".join(f"{b}+{d}://" for b, d in ASYNC_DRIVERS.items())
            raise ValueError(f"needs an asynchronous driver: the URL must start with {known}")
        return value


class PointsSettings(Section):
    """Open-Assistant's points; ``accepted_bonus`` pays the reply's points again once it passes review."""

    initial_prompt: NonNegFloat = 0.1
    assistant_reply: NonNegFloat = 4
    prompter_reply: NonNegFloat = 1
    label_simple: NonNegFloat = 1
    label_full: NonNegFloat = 2
    ranking: NonNegFloat = 1
    ranking_agreement_bonus: NonNegFloat = 2
    placement: list[NonNegFloat] = [9, 3, 1]


class TaskWeights(Section):
    rank: NonNegFloat = 10
    label_reply: NonNegFloat = 5
    label_prompt: NonNegFloat = 5
    reply: NonNegFloat = 2
    initial_prompt: NonNegFloat = 0.01


class LabellingSettings(Section):
    default_language: str = "en"
    max_active_trees_per_language: PosInt = 10
    max_prompts_in_review: PosInt = 100
    max_prompt_lottery_waiting: PosInt = 250
    max_tree_depth: PosInt = 3
    max_children: PosInt = 3
    num_prompter_replies: PosInt = 1
    # Our extension: a user turn is answered before its tree closes, waiting user turns are answered
    # first, and no user turn is asked for where the depth limit forbids its answer.
    answer_prompter_turns: bool = True
    goal_tree_size: PosInt = 12
    reviews_initial_prompt: PosInt = 3
    reviews_reply: PosInt = 3
    acceptance_threshold_initial_prompt: Fraction = 0.6
    acceptance_threshold_reply: Fraction = 0.6
    # Our extension: more reviews before a rejection that some reviewer disagreed with (0 = OA's rule).
    contested_extra_reviews: NonNegInt = 3
    rankings_needed: PosInt = 3
    rank_prompter_replies: bool = False
    lonely_children_probability: Fraction = 0.75
    reply_lock_minutes: NonNegFloat = 5
    max_pending_tasks_per_user: PosInt = 8
    pending_task_window_minutes: PosInt = 5
    task_expiry_hours: PosInt = 48
    # Chance that a review asks the full label set rather than the simple one, per message role
    # (Open-Assistant's p_full_labeling_review_*).
    p_full_labeling_review_prompt: Fraction = 1.0
    p_full_labeling_review_reply_assistant: Fraction = 1.0
    p_full_labeling_review_reply_prompter: Fraction = 0.25
    max_text_length: PosInt = 2000
    duplicate_text_window_minutes: NonNegFloat = 120
    red_flags_to_remove: PosInt = 4
    skips_to_halt: PosInt = 25
    good_agreement: Fraction = 0.5
    streak_reset_hours: PosInt = 36
    task_requests_per_window: PosInt = 30
    task_request_window_minutes: PosInt = 4
    assistant_replies_per_window: PosInt = 4
    prompter_replies_per_window: PosInt = 8
    reply_window_minutes: PosInt = 2
    weights: TaskWeights = TaskWeights()
    points: PointsSettings = PointsSettings()


class ChatSettings(Section):
    enabled: bool = True
    backend: Literal["llama_cpp", "openai"] = "llama_cpp"
    model_path: str | None = None
    context_size: PosInt = 4096
    threads: PosInt | None = None
    max_reply_tokens: PosInt = 512
    # Conversations the model generates at once, batched; more wait in a queue that is fair per user.
    parallel: PosInt = 4
    system_prompt: str = "You are a helpful assistant."
    max_system_prompt_chars: PosInt = 1500
    preset: Literal["k50", "k50-creative", "k50-precise", "nucleus9"] = "k50"
    # Fixed sampling seed (each reply offsets it, so regenerations differ); None draws a random one.
    seed: NonNegInt | None = None
    # A regeneration samples at least this hot, so it does not repeat the answer it replaces.
    regeneration_min_temperature: Annotated[float, Field(ge=0, le=5)] = 0.7
    state_cache_mb: NonNegInt = 512
    rate_limit_messages: PosInt = 20
    rate_limit_window_minutes: PosInt = 10
    edit_interval_seconds: Annotated[float, Field(ge=0.2)] = 1.0
    reply_timeout_seconds: PosInt = 180
    # At shutdown, running replies get this long to finish; the rest are finished after the restart.
    shutdown_grace_seconds: NonNegFloat = 15
    answer_mentions: bool = False
    synthetic_replies: bool = False
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: str | None = None
    openai_model: str = "default"


class SchedulerSettings(Section):
    expire_tasks_minutes: PosFloat = 10
    tree_maintenance_minutes: PosFloat = 5
    synthetic_reply_minutes: PosFloat = 10
    # A job's lease lasts one period plus this; a dead process's jobs move to another after that long.
    lease_grace_seconds: PosFloat = 30


class PostSettings(Section):
    """Task posts in channels (/admin channel set)."""

    default_interval_minutes: PosInt = 60
    # The first post of a newly set channel waits this long (a restart waits for the channel's interval).
    first_post_delay_seconds: NonNegFloat = 60
    # Our extension: 👍 / 👎 on a review post is also a quick review (not spam, right language / spam),
    # besides the vote. Off: they are votes only, as in Open-Assistant, and reviews come through the
    # post's Full review button.
    reaction_reviews: bool = True
    # An open post older than this is closed as expired; its work is offered again elsewhere.
    expiry_hours: PosInt = 48
    # Open posts of a channel checked (and edited when their work is done) at each posting time.
    refresh_per_tick: PosInt = 25


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OABOT_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    discord: DiscordSettings = DiscordSettings()
    database: DatabaseSettings = DatabaseSettings()
    labelling: LabellingSettings = LabellingSettings()
    chat: ChatSettings = ChatSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    posts: PostSettings = PostSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; environment variables must override it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _discord_token_env(self) -> Settings:
        token = os.environ.get("DISCORD_TOKEN")
        if token:
            self.discord.token = token.strip()
        return self


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(error: dict[str, Any]) -> str:
    key = _location(error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    problem = error["msg"]
    if "input" in error and error["type"] != "missing" and not isinstance(error["input"], dict):
        problem += f" (got {error['input']!r})"
    return f"'{key}': {problem}"


def _env_variable(loc: tuple[Any, ...]) -> str | None:
    """The OABOT_ variable that set the value at `loc`, if one did (names are case-insensitive)."""
    wanted = ("OABOT_" + "__".join(str(part) for part in loc)).upper()
    return next((name for name in os.environ if name.upper() == wanted), None)


def _describe_source(error: dict[str, Any], path: Any, from_file: bool) -> str:
    variable = _env_variable(tuple(error["loc"]))
    if variable is not None:
        message = _describe(error).split(": ", 1)[-1]
        return f"environment variable {variable}: {message}"
    return f"{path}: {_describe(error)}" if from_file else _describe(error)


def load_settings(path: str | os.PathLike[str] | None = "config.toml", *, required: bool = False) -> Settings:
    """Read settings; a missing file means all defaults unless `required` (a path the user gave).
    Raises ConfigError with one line."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if required and not file.is_file():
            raise ConfigError(f"{file}: no such settings file" if not file.exists() else f"{file}: not a file")
        if file.exists():
            try:
                with file.open("rb") as handle:
                    data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{file}: not valid TOML: {exc}") from None
            except OSError as exc:
                raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        errors = exc.errors()
        message = _describe_source(errors[0], path, bool(data))
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more: " + "; ".join(
                _describe_source(e, path, bool(data)) for e in errors[1:]) + ")"
        raise ConfigError(message) from None

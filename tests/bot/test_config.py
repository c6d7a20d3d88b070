from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings, load_settings


def test_missing_file_means_defaults(tmp_path):
    settings = load_settings(tmp_path / "absent.toml")
    assert settings.database.url == "sqlite+aiosqlite:///data/oabot.db"
    assert settings.labelling.goal_tree_size == 12
    assert settings.labelling.acceptance_threshold_reply == 0.6
    assert settings.labelling.weights.initial_prompt == 0.01
    assert settings.chat.preset == "k50"


def test_file_then_environment(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('[labelling]\nmax_tree_depth = 5\n[discord]\ntoken = "from-file"\ncommand_guild_ids = [1, 2]\n')
    monkeypatch.setenv("OABOT_LABELLING__MAX_CHILDREN", "4")
    monkeypatch.setenv("OABOT_LABELLING__MAX_TREE_DEPTH", "6")
    settings = load_settings(path)
    assert settings.labelling.max_tree_depth == 6
    assert settings.labelling.max_children == 4
    assert settings.discord.token == "from-file"
    assert settings.discord.command_guild_ids == [1, 2]
    monkeypatch.setenv("DISCORD_TOKEN", "from-env")
    assert load_settings(path).discord.token == "from-env"


def test_example_config_is_valid_and_complete():
    import tomllib
    from pathlib import Path

    from bot.config import Settings

    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    data = tomllib.loads(example.read_text())
    Settings(**data)

    def keys(model, prefix=""):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if hasattr(type(value), "model_fields"):
                yield from keys(value, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    def file_keys(table, prefix=""):
        for name, value in table.items():
            if isinstance(value, dict):
                yield from file_keys(value, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    text = example.read_text()
    documented = set(file_keys(data)) | {line.lstrip("# ").split(" =")[0] for line in text.splitlines() if " = " in line}
    # Every setting appears in the example, set or commented out with its default.
    missing = [key for key in keys(Settings()) if key not in documented and key.split(".")[-1] not in documented]
    assert missing == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[labelling]\nmax_tree_depth = 'deep'\n", "'labelling.max_tree_depth'"),
        ("[labelling]\nacceptance_threshold_reply = -0.5\n", "'labelling.acceptance_threshold_reply'"),
        ("[labelling]\nmax_tre_depth = 3\n", "unknown key 'labelling.max_tre_depth'"),
        ("[chatt]\nx = 1\n", "unknown key 'chatt'"),
        ("[chat]\npreset = 'wild'\n", "'chat.preset'"),
        ("[labelling\n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path, content, expected):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path)  # a directory cannot be read as a file


def test_an_older_config_with_busy_timeout_in_milliseconds_still_loads():
    assert Settings(database={"busy_timeout_ms": 5000}).database.busy_timeout_seconds == 5
    assert Settings(database={"busy_timeout_seconds": 12}).database.busy_timeout_seconds == 12

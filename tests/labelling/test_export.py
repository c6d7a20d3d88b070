"""Export layouts, filters and privacy, read back from the files the export writes."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.labelling import export as export_module
from bot.labelling import pseudonyms
from bot.labelling.export import export
from storage import db
from storage.enums import ChatMessageState, Role, TreeState
from storage.models import (
    ChatConversation,
    ChatMessage,
    ChatPreference,
    Label,
    Message,
    MessageTree,
    Reaction,
    User,
)

SALT = "test-salt"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def expected_pseudonym(discord_id: int, salt: str = SALT) -> str:
    digest = hmac.new(salt.encode(), f"discord:{discord_id}".encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class World:
    """Ids of what `populate` created, by name."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.users: dict[str, User] = {}

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


async def populate(sessions) -> World:
    w = World()
    async with sessions() as s:
        for name, discord_id, extra in [
            ("alice", 1001, {}),
            ("bob", 1002, {"locale": "de-DE"}),
            ("carol", 1003, {}),
            ("dave", 1004, {}),
            ("optout", 1005, {"opted_out": True}),
            ("sim", 1006, {"synthetic": True}),
        ]:
            user = User(discord_id=discord_id, display_name=name, **extra)
            s.add(user)
            w.users[name] = user
        await s.flush()
        u = {name: user.id for name, user in w.users.items()}

        def tree(name: str, state: str, lang: str = "en") -> MessageTree:
            t = MessageTree(state=state, lang=lang, created_at=at(0))
            s.add(t)
            return t

        async def msg(name, t, parent, role, author, minute, **kw) -> Message:
            m = Message(
                tree_id=t.id,
                parent_id=None if parent is None else w[parent],
                role=role,
                text=kw.pop("text", f"text of {name}"),
                author_id=u[author],
                lang=kw.pop("lang", t.lang),
                depth=kw.pop("depth", 0),
                review_count=kw.pop("review_count", 3),
                review_result=kw.pop("review_result", True),
                created_at=at(minute),
                **kw,
            )
            s.add(m)
            await s.flush()
            w.ids[name] = m.id
            return m

        # Tree 1 (en, ready): P1 -> A1 (rank 1), A2 (rank 0), A3 (rejected), A4 (deleted);
        # A2 -> P2 -> A5; A1 -> P3 by the opted-out user -> A6 (both must vanish).
        t1 = tree("t1", TreeState.READY_FOR_EXPORT)
        await s.flush()
        w.ids["t1"] = t1.id
        await msg("P1", t1, None, Role.PROMPTER, "alice", 0, text="Why is the sky blue?")
        await msg("A1", t1, "P1", Role.ASSISTANT, "bob", 1, rank=1, depth=1)
        await msg("A2", t1, "P1", Role.ASSISTANT, "carol", 2, rank=0, depth=1, text="Rayleigh scattering.")
        await msg("A3", t1, "P1", Role.ASSISTANT, "dave", 3, review_result=False, depth=1)
        await msg("A4", t1, "P1", Role.ASSISTANT, "sim", 4, deleted=True, depth=1, synthetic=True,
                  model_name="smol")
        await msg("P2", t1, "A2", Role.PROMPTER, "bob", 5, depth=2)
        await msg("A5", t1, "P2", Role.ASSISTANT, "sim", 6, depth=3, synthetic=True, model_name="smol-135m")
        await msg("P3", t1, "A1", Role.PROMPTER, "optout", 7, depth=2)
        await msg("A6", t1, "P3", Role.ASSISTANT, "carol", 8, depth=3)
        s.add_all(
            [
                Label(message_id=w["A2"], user_id=u["alice"], name="quality", value=0.5),
                Label(message_id=w["A2"], user_id=u["dave"], name="quality", value=1.0),
                Label(message_id=w["A2"], user_id=u["alice"], name="spam", value=0.0),
                Reaction(message_id=w["A2"], user_id=u["alice"], emoji="+1"),
                Reaction(message_id=w["A2"], user_id=u["dave"], emoji="+1"),
                Reaction(message_id=w["A2"], user_id=u["bob"], emoji="red_flag"),
            ]
        )

        # Tree 2 (de, ready): a prompt and one unranked reply.
        t2 = tree("t2", TreeState.READY_FOR_EXPORT, "de")
        await s.flush()
        w.ids["t2"] = t2.id
        await msg("Q1", t2, None, Role.PROMPTER, "bob", 10, text="Warum ist der Himmel blau?")
        await msg("B1", t2, "Q1", Role.ASSISTANT, "alice", 11, depth=1, text="Streuung.")

        # Tree 3 (en, growing): not exported by default; its prompt is still in review.
        t3 = tree("t3", TreeState.GROWING)
        await s.flush()
        w.ids["t3"] = t3.id
        await msg("R1", t3, None, Role.PROMPTER, "carol", 20, review_result=None, review_count=1)

        # Tree 4 (en, ready) written by the opted-out user: absent whole.
        t4 = tree("t4", TreeState.READY_FOR_EXPORT)
        await s.flush()
        w.ids["t4"] = t4.id
        await msg("S1", t4, None, Role.PROMPTER, "optout", 30)
        await msg("S2", t4, "S1", Role.ASSISTANT, "alice", 31, depth=1)

        # Chat: bob regenerated the second answer and kept the second try.
        conv = ChatConversation(user_id=u["bob"], model_name="smol-135m", system_prompt="Be brief.")
        other = ChatConversation(user_id=u["optout"], model_name="smol-135m")
        s.add_all([conv, other])
        await s.flush()
        w.ids["conv"] = conv.id

        async def chat(name, c, parent, role, text, **kw) -> ChatMessage:
            m = ChatMessage(
                conversation_id=c.id, parent_id=None if parent is None else w[parent], role=role, text=text, **kw
            )
            s.add(m)
            await s.flush()
            w.ids[name] = m.id
            return m

        await chat("c_u1", conv, None, "user", "Hi")
        await chat("c_a1", conv, "c_u1", "assistant", "Hello!", model_name="smol-135m", feedback=1)
        await chat("c_u2", conv, "c_a1", "user", "Name a colour")
        await chat("c_a2a", conv, "c_u2", "assistant", "Blue, green and more.", kept=False, feedback=-1)
        await chat("c_a2b", conv, "c_u2", "assistant", "Blue.", model_name="smol-135m")
        await chat("c_a2c", conv, "c_u2", "assistant", "Bl", state=ChatMessageState.CANCELLED, kept=False)
        await chat("o_u1", other, None, "user", "secret")
        await chat("o_a1", other, "o_u1", "assistant", "a", feedback=1)
        await chat("o_a2", other, "o_u1", "assistant", "b", kept=False)
        s.add_all(
            [
                ChatPreference(chosen_id=w["c_a2b"], rejected_id=w["c_a2a"]),
                ChatPreference(chosen_id=w["c_a2b"], rejected_id=w["c_a2c"]),  # cancelled: no pair
                ChatPreference(chosen_id=w["o_a1"], rejected_id=w["o_a2"]),
            ]
        )
        await s.commit()
    return w


@pytest.fixture
async def env(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/data/test.db")
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    world = await populate(sessions)
    yield sessions, world, tmp_path
    await engine.dispose()


def read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


async def run(sessions, tmp_path, fmt, name="out.jsonl", **kw) -> list[dict]:
    kw.setdefault("salt", SALT)
    path = tmp_path / name
    count = await export(sessions, fmt, path, **kw)
    rows = read(path)
    assert count == len(rows)
    return rows


def iso(minutes: int) -> str:
    return at(minutes).isoformat()


async def test_tree_layout_field_by_field(env):
    sessions, w, tmp = env
    trees = await run(sessions, tmp, "oasst-trees")
    assert [t["message_tree_id"] for t in trees] == [str(w["P1"]), str(w["Q1"])]
    alice, bob, carol = (expected_pseudonym(i) for i in (1001, 1002, 1003))
    sim = expected_pseudonym(1006)

    def base(name, user, minute, role, **kw):
        return {
            "message_id": str(w[name]),
            **({"parent_id": kw.pop("parent")} if "parent" in kw else {}),
            "user_id": user,
            "created_date": iso(minute),
            "text": kw.pop("text", f"text of {name}"),
            "role": role,
            "lang": "en",
            "review_count": 3,
            "review_result": True,
            "deleted": False,
            **kw,
        }

    a5 = base("A5", sim, 6, "assistant", parent=str(w["P2"]), synthetic=True, model_name="smol-135m")
    p2 = base("P2", bob, 5, "prompter", parent=str(w["A2"]), synthetic=False, replies=[a5])
    a2 = base(
        "A2", carol, 2, "assistant", parent=str(w["P1"]), text="Rayleigh scattering.", rank=0, synthetic=False,
        emojis={"+1": 2, "red_flag": 1},
        labels={"quality": {"value": 0.75, "count": 2}, "spam": {"value": 0.0, "count": 1}},
        replies=[p2],
    )
    a1 = base("A1", bob, 1, "assistant", parent=str(w["P1"]), rank=1, synthetic=False)
    a3 = base("A3", expected_pseudonym(1004), 3, "assistant", parent=str(w["P1"]), synthetic=False)
    a3["review_result"] = False
    p1 = base("P1", alice, 0, "prompter", text="Why is the sky blue?", synthetic=False, replies=[a2, a1, a3])
    assert trees[0] == {"message_tree_id": str(w["P1"]), "tree_state": "ready_for_export", "prompt": p1}
    assert list(trees[0]["prompt"]) == [
        "message_id", "user_id", "created_date", "text", "role", "lang", "review_count", "review_result",
        "deleted", "synthetic", "replies",
    ]


async def test_replies_by_rank_then_unranked_by_creation(env):
    sessions, w, tmp = env
    async with sessions() as s:
        # Make A3 accepted and unranked, and add an unranked reply created before the others.
        a3 = await s.get(Message, w["A3"])
        a3.review_result = True
        eve = User(discord_id=1007, display_name="eve")
        s.add(eve)
        await s.flush()
        early = Message(
            tree_id=w["t1"], parent_id=w["P1"], role=Role.ASSISTANT, text="early", author_id=eve.id,
            lang="en", depth=1, review_result=True, created_at=at(-5),
        )
        s.add(early)
        await s.commit()
        early_id = early.id
    tree = (await run(sessions, tmp, "oasst-trees"))[0]
    order = [r["message_id"] for r in tree["prompt"]["replies"]]
    assert order == [str(w["A2"]), str(w["A1"]), str(early_id), str(w["A3"])]


async def test_flat_messages_layout(env):
    sessions, w, tmp = env
    rows = await run(sessions, tmp, "oasst-messages")
    # Depth first, children by rank: the same order the tree shows.
    assert [r["message_id"] for r in rows] == [
        str(w[n]) for n in ("P1", "A2", "P2", "A5", "A1", "A3", "Q1", "B1")
    ]
    by_id = {r["message_id"]: r for r in rows}
    a2 = by_id[str(w["A2"])]
    assert a2["emojis"] == {"name": ["+1", "red_flag"], "count": [2, 1]}
    assert a2["labels"] == {"name": ["quality", "spam"], "value": [0.75, 0.0], "count": [2, 1]}
    assert a2["message_tree_id"] == str(w["P1"]) and a2["tree_state"] == "ready_for_export"
    assert a2["rank"] == 0 and "replies" not in a2
    b1 = by_id[str(w["B1"])]
    assert b1 == {
        "message_id": str(w["B1"]), "parent_id": str(w["Q1"]), "user_id": expected_pseudonym(1001),
        "created_date": iso(11), "text": "Streuung.", "role": "assistant", "lang": "de", "review_count": 3,
        "review_result": True, "deleted": False, "synthetic": False, "message_tree_id": str(w["Q1"]),
        "tree_state": "ready_for_export",
    }


async def test_empty_fields_dropped_but_false_and_zero_kept(env):
    sessions, _w, tmp = env

    def walk(value):
        if isinstance(value, dict):
            assert value != {}
            for v in value.values():
                assert v is not None and v != [] and v != {}
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for fmt in ("oasst-trees", "oasst-messages"):
        rows = await run(sessions, tmp, fmt, name=f"{fmt}.jsonl", states=["ready_for_export", "growing"])
        walk(rows)
    growing = [r for r in rows if r["tree_state"] == "growing"]
    assert len(growing) == 1 and "review_result" not in growing[0] and growing[0]["deleted"] is False


async def test_deleted_only_with_include_deleted(env):
    sessions, w, tmp = env
    plain = {r["message_id"] for r in await run(sessions, tmp, "oasst-messages")}
    assert str(w["A4"]) not in plain
    rows = await run(sessions, tmp, "oasst-messages", include_deleted=True)
    a4 = next(r for r in rows if r["message_id"] == str(w["A4"]))
    assert a4["deleted"] is True and a4["model_name"] == "smol" and a4["synthetic"] is True
    assert len(rows) == len(plain) + 1


async def test_opted_out_users_vanish_with_their_subtrees(env):
    sessions, w, tmp = env
    ids = {r["message_id"] for r in await run(sessions, tmp, "oasst-messages", include_deleted=True)}
    for gone in ("P3", "A6", "S1", "S2"):
        assert str(w[gone]) not in ids
    raw = await run(sessions, tmp, "oasst-messages", raw_ids=True)
    assert "1005" not in {r.get("user_id") for r in raw}


async def test_lang_and_state_filters(env):
    sessions, w, tmp = env
    de = await run(sessions, tmp, "oasst-trees", lang="de")
    assert [t["message_tree_id"] for t in de] == [str(w["Q1"])]
    growing = await run(sessions, tmp, "oasst-trees", states=("growing",))
    assert [t["tree_state"] for t in growing] == ["growing"]
    both = await run(sessions, tmp, "oasst-trees", states="growing,ready_for_export", lang=["en"])
    assert [t["message_tree_id"] for t in both] == [str(w["P1"]), str(w["R1"])]
    with pytest.raises(ValueError, match="unknown tree state"):
        await export(sessions, "oasst-trees", tmp / "x.jsonl", states=("growin",), salt=SALT)
    with pytest.raises(ValueError, match="unknown export format"):
        await export(sessions, "csv", tmp / "x.jsonl", salt=SALT)


async def test_small_batches_give_the_same_file(env):
    sessions, _w, tmp = env
    for fmt in ("oasst-trees", "preferences", "sft"):
        whole = await run(sessions, tmp, fmt, name="a.jsonl", states=["ready_for_export", "growing"])
        paged = await run(sessions, tmp, fmt, name="b.jsonl", states=["ready_for_export", "growing"], batch_size=1)
        assert whole == paged


async def test_pseudonyms_stable_salted_and_raw(env, monkeypatch):
    sessions, w, tmp = env
    monkeypatch.delenv(pseudonyms.SALT_ENV, raising=False)
    first = await run(sessions, tmp, "oasst-messages", salt=None)
    salt_file = tmp / "data" / pseudonyms.SALT_FILE
    assert salt_file.exists()
    salt = salt_file.read_text().strip()
    assert len(salt) == 64
    again = await run(sessions, tmp, "oasst-messages", salt=None)
    assert first == again and salt_file.read_text().strip() == salt
    assert first[0]["user_id"] == expected_pseudonym(1001, salt)

    monkeypatch.setenv(pseudonyms.SALT_ENV, "from-env")
    env_rows = await run(sessions, tmp, "oasst-messages", salt=None)
    assert env_rows[0]["user_id"] == expected_pseudonym(1001, "from-env")

    other = await run(sessions, tmp, "oasst-messages", salt="another")
    raw = await run(sessions, tmp, "oasst-messages", raw_ids=True)
    assert raw[0]["user_id"] == "1001"
    ids = [{r["user_id"] for r in rows} for rows in (first, env_rows, other, raw)]
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            assert not a & b
    # The same user has the same pseudonym on every message.
    alice = {r["user_id"] for r in first if r["message_id"] in (str(w["P1"]), str(w["B1"]))}
    assert len(alice) == 1


async def test_gzip_by_suffix(env):
    sessions, _w, tmp = env
    plain = await run(sessions, tmp, "oasst-trees")
    zipped = await run(sessions, tmp, "oasst-trees", name="out.jsonl.gz")
    assert zipped == plain
    assert (tmp / "out.jsonl.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert not list(tmp.glob("*.part"))


async def test_preferences_from_rankings_and_chat(env):
    sessions, w, tmp = env
    pairs = await run(sessions, tmp, "preferences")
    ranking = [p for p in pairs if p["source"] == "ranking"]
    chat = [p for p in pairs if p["source"] == "chat"]
    # Only A2 (rank 0) and A1 (rank 1) are ranked, accepted and kept: one pair.
    assert ranking == [
        {
            "prompt": [{"role": "user", "content": "Why is the sky blue?"}],
            "chosen": [{"role": "assistant", "content": "Rayleigh scattering."}],
            "rejected": [{"role": "assistant", "content": "text of A1"}],
            "source": "ranking",
            "message_tree_id": str(w["P1"]),
            "lang": "en",
            "parent_id": str(w["P1"]),
            "chosen_id": str(w["A2"]),
            "rejected_id": str(w["A1"]),
            "chosen_rank": 0,
            "rejected_rank": 1,
        }
    ]
    # The opted-out user's chat is absent; the cancelled answer makes no pair.
    assert chat == [
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Name a colour"},
            ],
            "chosen": [{"role": "assistant", "content": "Blue."}],
            "rejected": [{"role": "assistant", "content": "Blue, green and more."}],
            "source": "chat",
            "model_name": "smol-135m",
            "lang": "de",
            "conversation_id": str(w["conv"]),
            "chosen_id": str(w["c_a2b"]),
            "rejected_id": str(w["c_a2a"]),
        }
    ]
    # The chat pair follows the owner's locale for the language filter.
    assert [p["source"] for p in await run(sessions, tmp, "preferences", lang="de")] == ["chat"]


async def test_preferences_three_ranked_siblings_make_three_pairs(env):
    sessions, w, tmp = env
    async with sessions() as s:
        a3 = await s.get(Message, w["A3"])
        a3.review_result, a3.rank = True, 2
        await s.commit()
    pairs = [p for p in await run(sessions, tmp, "preferences") if p["source"] == "ranking"]
    assert [(p["chosen_rank"], p["rejected_rank"]) for p in pairs] == [(0, 1), (0, 2), (1, 2)]


async def test_sft_follows_the_best_path(env):
    sessions, w, tmp = env
    rows = await run(sessions, tmp, "sft")
    assert rows == [
        {
            "messages": [
                {"role": "user", "content": "Why is the sky blue?"},
                {"role": "assistant", "content": "Rayleigh scattering."},
                {"role": "user", "content": "text of P2"},
                {"role": "assistant", "content": "text of A5"},
            ],
            "message_tree_id": str(w["P1"]),
            "lang": "en",
        },
        {
            "messages": [
                {"role": "user", "content": "Warum ist der Himmel blau?"},
                {"role": "assistant", "content": "Streuung."},
            ],
            "message_tree_id": str(w["Q1"]),
            "lang": "de",
        },
    ]


async def test_sft_ends_on_an_assistant_message(env):
    sessions, w, tmp = env
    async with sessions() as s:
        a5 = await s.get(Message, w["A5"])
        a5.review_result = False  # P2 is now the end of the best path: cut back to A2
        await s.commit()
    first = (await run(sessions, tmp, "sft"))[0]["messages"]
    assert [m["content"] for m in first] == ["Why is the sky blue?", "Rayleigh scattering."]


def test_cli_end_to_end(tmp_path, capsys, monkeypatch):
    db_path = tmp_path / "data" / "bot.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db_path}"\n')
    monkeypatch.delenv(pseudonyms.SALT_ENV, raising=False)

    async def setup() -> World:
        engine = db.create_engine(f"sqlite+aiosqlite:///{db_path}")
        try:
            await db.upgrade(engine)
            return await populate(db.session_factory(engine))
        finally:
            await engine.dispose()

    w = asyncio.run(setup())
    out = tmp_path / "exports" / "trees.jsonl.gz"
    code = main(["export", "--config", str(config), "--format", "oasst-trees", "-o", str(out), "--lang", "en,de"])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"wrote 2 lines to {out}"
    trees = read(out)
    assert [t["message_tree_id"] for t in trees] == [str(w["P1"]), str(w["Q1"])]
    salt = (db_path.parent / pseudonyms.SALT_FILE).read_text().strip()
    assert trees[0]["prompt"]["user_id"] == expected_pseudonym(1001, salt)

    out2 = tmp_path / "m.jsonl"
    argv = ["export", "--config", str(config), "--format", "oasst-messages", "-o", str(out2), "--raw-ids",
            "--state", "growing", "--state", "ready_for_export", "--include-deleted", "--lang", "en"]
    assert main(argv) == 0
    rows = read(out2)
    assert capsys.readouterr().out.strip() == f"wrote {len(rows)} lines to {out2}"
    assert {r["tree_state"] for r in rows} == {"growing", "ready_for_export"}
    assert str(w["A4"]) in {r["message_id"] for r in rows}
    assert rows[0]["user_id"] == "1001"

    assert main(["export", "--config", str(config), "--format", "sft", "-o", str(out2), "--state", "nope"]) == 2
    assert "unknown tree state" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_bar_only_on_a_terminal():
    terminal, pipe = FakeTerminal(True), FakeTerminal(False)
    for stream in (terminal, pipe):
        bar = export_module._Progress(True, 4, stream)
        bar.update("trees", 4, 40, force=True)
        bar.close()
    assert "[" + "#" * 30 + "] 4/4 trees  40 lines" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    assert pipe.getvalue() == ""


async def test_a_failed_export_leaves_no_file(env, monkeypatch):
    sessions, _w, tmp = env

    def broken(tree):
        raise RuntimeError("disk on fire")
        yield  # pragma: no cover

    monkeypatch.setitem(export_module._TREE_FORMATS, "sft", broken)
    out = tmp / "out.jsonl"
    out.write_text("the previous export\n")
    with pytest.raises(RuntimeError):
        await export(sessions, "sft", out)
    assert out.read_text() == "the previous export\n"
    assert not list(tmp.glob("*.part"))


async def test_flat_layout_is_the_trees_flattened(env):
    sessions, _w, tmp = env
    kw = {"states": ["ready_for_export", "growing"], "include_deleted": True}
    trees = await run(sessions, tmp, "oasst-trees", name="t.jsonl", **kw)
    flat = await run(sessions, tmp, "oasst-messages", name="m.jsonl", **kw)

    def flatten(node, tree):
        row = {k: v for k, v in node.items() if k not in ("replies", "emojis", "labels")}
        row["message_tree_id"], row["tree_state"] = tree["message_tree_id"], tree["tree_state"]
        if "emojis" in node:
            row["emojis"] = {"name": list(node["emojis"]), "count": list(node["emojis"].values())}
        if "labels" in node:
            row["labels"] = {
                "name": list(node["labels"]),
                "value": [v["value"] for v in node["labels"].values()],
                "count": [v["count"] for v in node["labels"].values()],
            }
        yield row
        for child in node.get("replies", []):
            yield from flatten(child, tree)

    assert [row for tree in trees for row in flatten(tree["prompt"], tree)] == flat


async def test_ratings_are_kto_lines_without_opted_out_users(env):
    sessions, w, tmp_path = env
    rows = await run(sessions, tmp_path, "ratings")
    assert [(r["message_id"], r["label"]) for r in rows] == [(str(w["c_a1"]), True), (str(w["c_a2a"]), False)]
    assert rows[1]["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a colour"}]
    assert rows[0]["user_id"] == rows[1]["user_id"] == expected_pseudonym(1002)
    assert rows[0]["lang"] == "de" and rows[0]["model_name"] == "smol-135m"
    assert all(r["source"] == "chat" for r in rows)

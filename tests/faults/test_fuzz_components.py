"""Hypothesis against what members press and fill in beyond the slash commands (test_fuzz_commands.py):

- the task forms (Write, from /task and from a channel post): hostile texts that are accepted are stored as
  written; texts that are refused (empty, whitespace or zero-width characters only, control codes, beyond
  the length limit) come back with a polite reason, and nothing changes;
- the channel posts' buttons (Write / Full review / Rank privately), pressed by anyone on every kind of post,
  on a post carrying another kind's button (an older version's) and on a bot message that is no post;
- the /admin edit form, with hostile and refused corrections;
- forged custom_ids on buttons, selects and forms: letters, negative numbers, numbers beyond the 32 bits of
  our row ids or the 64 bits of Discord ids where an id goes, another member's task, rows that were deleted
  or never existed, unknown prefixes.

A refusal is one of the bot's polite sentences, shown only to the member, and the database is as it was (the
audit log aside, which records refused moderator actions). For every example, fuzz_world.py's checks too: an
answer, no error logged, nobody pinged.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import delete, select

from bot.admin.actions import Moderator, ModeratorActions
from bot.labelling.errors import LabellingError, TaskRefused
from cogs.admin.actions import STALE_FORM as ADMIN_STALE_FORM
from cogs.admin.checks import NOT_MODERATOR
from cogs.command_errors import GENERIC, STALE_COMPONENT
from cogs.labelling.render import ECHO_TITLE
from cogs.labelling.task_cog import STALE, STALE_FORM
from storage.enums import TaskKind
from storage.models import Message, Task
from tests.cogs.conftest import database_dump
from tests.faults.fuzz_world import (
    DATABASES,
    World,
    answered,
    check_world,
    fuzz_settings,
    hostile_texts,
    running_world,
)

MODAL_SUBMIT = 5
LIMIT = 2000  # the campaign's max_text_length (the forms' boxes hold 2000 too; a forged form sends more)
POST_CHANNELS = {"prompts": "prompt", "replies": "reply", "reviews": "review", "rankings": "rank"}
POST_BUTTONS = {"prompt": "write", "reply": "write", "review": "review", "rank": "rank"}
FINE_TEXT = "How do tides work, and why are there two a day?"


# ----- the world: a campaign with every kind of post ----------------------------------------------------


async def seed_campaign(labelling: Any) -> dict[str, int]:
    """Work for every kind of post (a prompt waiting for replies, one waiting for review, two replies
    waiting to be ranked) and a spare prompt for /admin edit; their authors are not on the server."""
    discord_ids = iter(range(900_100, 901_000))

    async def someone() -> int:
        return (await labelling.get_or_create_user(next(discord_ids))).id

    async def reviewed(kind: TaskKind, times: int) -> None:
        for _ in range(times):
            reviewer = await someone()
            task = await labelling.request_task(reviewer, kinds=kind)
            await labelling.submit_labels(task.task_id, reviewer, {"spam": 0.0})

    async def prompt(text: str, reviews: int) -> int:
        author = await someone()
        task = await labelling.request_task(author, kinds=TaskKind.INITIAL_PROMPT)
        message_id = (await labelling.submit_initial_prompt(task.task_id, author, text)).message_id
        await reviewed(TaskKind.LABEL_INITIAL_PROMPT, reviews)
        return message_id

    await prompt("Why do cats purr when they are content?", 2)
    for text in ("The muscles of the larynx twitch as the cat breathes.", "Cats purr to calm themselves."):
        writer = await someone()
        task = await labelling.request_task(writer, kinds=TaskKind.ASSISTANT_REPLY)
        await labelling.submit_reply(task.task_id, writer, text)
    await reviewed(TaskKind.LABEL_ASSISTANT_REPLY, 4)  # both replies accepted: the tree waits for rankings
    await prompt("How do bees find their way home?", 2)  # waits for replies
    removed = await prompt("A message a moderator removed.", 0)
    spare = await prompt("What makes bread rise?", 0)  # waits for review; also what /admin edit corrects
    return {"removed": removed, "spare": spare}


async def prepare(world: World) -> None:
    labelling = world.bot.services.labelling
    world.ids = await seed_campaign(labelling)
    moderator = Moderator(world.mod.id, "mod", world.guild.id)
    await ModeratorActions(labelling).delete(moderator, world.ids["removed"])
    world.posts = {}
    for name, kind in POST_CHANNELS.items():
        channel = world.guild.channel(name)
        set_up = await world.mod.slash("admin channel set", {"channel": channel, "kinds": kind},
                                       channel=world.guild.channel("general"))
        await set_up.wait_message(timeout=15)
        ref = await world.bot.get_cog("Posts").post_next(channel.id)
        assert ref is not None, f"nothing to post in #{name}"
        world.posts[kind] = world.emu.get_message(ref.discord_message_id)
    # Another member's open task, and a task row that was deleted.
    world.ids["foreign_task"] = task_id_of(await (await world.member.slash("task", {"kind": "prompt"})).wait_message())
    gone = task_id_of(await (await world.mallory.slash("task", {"kind": "prompt"})).wait_message())
    async with world.sessions.begin() as session:
        await session.execute(delete(Task).where(Task.id == gone))
    world.ids["deleted_task"] = gone


@pytest.fixture(scope="module", params=DATABASES)
def world(request, tmp_path_factory):
    yield from running_world(tmp_path_factory.mktemp("fuzz"), request.param, channels=tuple(POST_CHANNELS),
                             prepare=prepare)


def task_id_of(message: Any) -> int:
    write = next(c for c in message.custom_ids if c.startswith("lt:b:write:"))
    return int(write.split(":")[3])


# ----- what a polite refusal is -------------------------------------------------------------------------


def _error_classes(cls: type) -> list[type]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _error_classes(child))]


# The cogs' own refusals, besides the engine's reasons; and the formatted one.
COG_REFUSALS = (STALE, STALE_FORM, ADMIN_STALE_FORM, STALE_COMPONENT, NOT_MODERATOR)
TOO_LONG = re.compile(r"The (new )?text is (\d+ characters long; the limit is \d+|longer than \d+ characters)\.")


def refusal_in(text: str | None) -> str | None:
    """The refusal sentence the text starts with (None: not a refusal)."""
    text = text or ""
    # Every reason of every refusal class, read when asked (the bot has imported them all by then).
    sentences = [message for cls in _error_classes(LabellingError) for message in cls.default_messages.values()]
    found = next((sentence for sentence in [*sentences, *COG_REFUSALS] if text.startswith(sentence)), None)
    return found or (match[0] if (match := TOO_LONG.match(text)) else None)


def shown_text(message: Any) -> str:
    """What a member reads first in a bot message: its content, else its first embed's description."""
    if message.content:
        return message.content
    return (message.embeds[0].get("description") or "") if message.embeds else ""


def refused_texts() -> st.SearchStrategy[tuple[str, str]]:
    """(the reason expected, a text the bot must refuse)."""
    visible = st.text(st.characters(categories=("L", "N", "P")), min_size=1, max_size=20)
    empty = TaskRefused("empty_text").message
    control = TaskRefused("control_characters").message
    return st.one_of(
        st.just((empty, "")),
        st.text(" \t\n\r\u00a0\u2003\u3000\u2028", min_size=1, max_size=40).map(lambda t: (empty, t)),
        st.text("\u200b\u200c\u200d\u2060\ufeff\u200e\u200f\u202a\u202e\u2066 \n", min_size=1, max_size=40)
        .map(lambda t: (empty, t)),
        st.tuples(visible, st.characters(categories=("Cc",), exclude_characters="\t\n\r"), visible)
        .map(lambda parts: (control, "".join(parts))),
        st.integers(LIMIT + 1, 4000).map(lambda n: (f"The text is {n} characters long; the limit is {LIMIT}.",
                                                    ("Why-is-the-sky-blue?" * 200)[:n])),
    )


# ----- pressing and submitting as Discord would send it ---------------------------------------------------


def submit_form(world: World, user: Any, custom_id: str, input_id: str, text: str, opened: Any | None) -> Any:
    """A form submission carrying ``text`` whatever the box allows (a modified client, or a form opened before
    the limit changed) and whatever custom_id is given."""
    data = {"custom_id": custom_id,
            "components": [{"type": 1, "components": [{"type": 4, "custom_id": input_id, "value": text}]}]}
    channel = opened.channel if opened is not None else world.guild.channel("general")
    return world.emu.new_interaction(user, channel, MODAL_SUBMIT, data,
                                     message=opened.source_message if opened else None, triggered_by=opened)


async def press(user: Any, message: Any, custom_id: str, values: list[str] | None = None) -> Any:
    """Press the button (or pick ``values`` in the select) ``custom_id`` on the message; a message that does
    not carry it holds it for this press only, as one of an older version, or a forged one, would."""
    kept = message.components
    if custom_id not in message.custom_ids:
        item = ({"type": 2, "style": 1, "label": "Old", "custom_id": custom_id} if values is None else
                {"type": 3, "custom_id": custom_id, "options": [{"label": v, "value": v} for v in values]})
        message.components = [*kept, {"type": 1, "components": [item]}]
    try:
        return await (user.click(message, custom_id) if values is None else user.select(message, custom_id, values))
    finally:
        message.components = kept


def bot_message(world: World, channel: Any) -> Any:
    """A message of the bot that is no task post (buttons, if any, are added when pressed)."""
    return world.emu.post_message(channel, world.emu.bot_user, {"content": "An old message"}, dispatch=False)


async def first_answer(world: World, interaction: Any, edits_before: int | None = None) -> tuple[str, Any]:
    """The kind of the bot's answer and what it showed: a modal, a new message (or follow-up), or the message
    the interaction came from, updated (``edits_before``: its revisions when the interaction was sent)."""
    response = await interaction.wait_response(timeout=15)
    assert 10062 not in interaction.errors and 40060 not in interaction.errors
    source = interaction.source_message
    if response.kind == "modal":
        return "modal", response.modal
    if response.kind == "update":
        return "update", source
    if response.kind in ("message", "deferred"):
        return "message", await interaction.wait_message(timeout=30)
    # Deferred at first (the work was slow): a follow-up, or an edit of the source message, comes next.
    assert response.kind == "deferred_update", response.kind
    shown = await world.emu.wait_for(
        lambda: interaction.followups[0] if interaction.followups else
        source if source is not None and edits_before is not None and len(source.history) > edits_before else None,
        timeout=30)
    return ("update" if shown is source else "message"), shown


async def echoed(world: World, submitted: Any, text: str) -> str:
    """A refused text came back: the reason (returned), and the text in the message or its attached file."""
    kind, note = await first_answer(world, submitted)
    assert kind == "message" and note.ephemeral and note.embeds[0]["title"] == ECHO_TITLE, (kind, shown_text(note))
    description = note.embeds[0]["description"]
    if note.attachments:
        assert note.attachments[0].data.decode() == text
    else:
        assert f"```\n{text}\n```" in description
    return description


def tally(seen: Counter) -> str:
    return "".join(f"\n  {n} × {what}" for what, n in sorted(seen.items()))


# ----- the tests ----------------------------------------------------------------------------------------


def test_task_forms_store_hostile_texts_as_written(world):
    seen: Counter = Counter()
    writer = world.run(world.emu.create_user("writer", guild=world.guild))
    offers: list[Any] = []

    @fuzz_settings(40)
    @given(text=st.one_of(hostile_texts(world), st.text(min_size=1, max_size=300)))
    def fuzz(text):
        async def run():
            # A refused text leaves the task open for a corrected one: the next text goes there.
            write = [c for c in offers[-1].custom_ids if c.startswith("lt:b:write:")] if offers else []
            if not write:
                offers.append(await (await writer.slash("task", {"kind": "prompt"})).wait_message(timeout=15))
                write = [c for c in offers[-1].custom_ids if c.startswith("lt:b:write:")]
                if not write:  # asked too often: refused as politely
                    refusal = refusal_in(shown_text(offers[-1]))
                    assert refusal, shown_text(offers[-1])
                    seen[refusal[:40]] += 1
                    return
            offer = offers[-1]
            opened = await writer.click(offer, write[0])
            await answered(world, opened)
            dump = await database_dump(world.sessions)
            edits = len(offer.history)
            done = submit_form(world, writer, opened.modal["custom_id"], "lt:text", text[:4000], opened)
            _kind, shown = await first_answer(world, done, edits)
            title = shown.embeds[0].get("title")
            seen[title] += 1
            if title == "Thank you, recorded!":
                async with world.sessions() as session:
                    stored = await session.scalar(select(Message.text).order_by(Message.id.desc()).limit(1))
                assert stored == text[:4000].strip()
            else:
                assert title == ECHO_TITLE and refusal_in(shown.embeds[0]["description"]), shown.embeds[0]
                assert await database_dump(world.sessions) == dump  # refused: nothing changed

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\ntask forms, hostile texts ({world.database}): {dict(seen)}")
    assert seen["Thank you, recorded!"] >= 4 and seen[ECHO_TITLE] >= 2  # both paths were taken


def test_refused_texts_come_back_politely_and_change_nothing(world):
    async def open_forms() -> dict[str, Any]:
        offer = await (await world.mallory.slash("task", {"kind": "prompt"})).wait_message(timeout=15)
        from_task = await world.mallory.click(offer, next(c for c in offer.custom_ids if c.startswith("lt:b:write:")))
        from_post = await world.mallory.click(world.posts["reply"], "lp:write")
        for opened in (from_task, from_post):
            assert (await answered(world, opened)).kind == "modal"
        return {"task": from_task, "post": from_post}

    forms = world.run(open_forms())
    seen: Counter = Counter()

    @fuzz_settings(50)
    @given(form=st.sampled_from(sorted(forms)), refused=refused_texts())
    def fuzz(form, refused):
        reason, text = refused

        async def run():
            opened = forms[form]
            dump = await database_dump(world.sessions)
            # The same form again and again: a refused text leaves its task open for a corrected one.
            done = submit_form(world, world.mallory, opened.modal["custom_id"], "lt:text", text, opened)
            description = await echoed(world, done, text)
            assert description.startswith(reason), (reason, description)
            seen[re.sub(r"\d+", "N", reason)] += 1
            assert await database_dump(world.sessions) == dump

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\nrefused texts ({world.database}): {dict(seen)}")
    assert len(seen) == 3  # empty or invisible, control codes, too long


def test_admin_edit_form_with_hostile_and_refused_texts(world):
    target = world.ids["spare"]
    seen: Counter = Counter()

    @fuzz_settings(40)
    @given(text=st.one_of(hostile_texts(world), refused_texts().map(lambda refused: refused[1])))
    def fuzz(text):
        text = text[:4000]

        async def run():
            opened = await world.mod.slash("admin edit", {"message": str(target)},
                                           channel=world.guild.channel("general"))
            assert (await answered(world, opened)).kind == "modal"
            dump = await database_dump(world.sessions)
            done = submit_form(world, world.mod, opened.modal["custom_id"], "adm:text", text, opened)
            kind, answer = await first_answer(world, done)
            assert kind == "message" and answer.ephemeral
            if answer.content.startswith(f"Message #{target} now reads:"):
                seen["edited"] += 1
                async with world.sessions() as session:
                    assert (await session.get(Message, target)).text == text.strip()
            else:
                refusal = refusal_in(answer.content)
                assert refusal and answer.content.endswith("Your text is attached."), answer.content
                assert answer.attachments[0].data.decode() == text
                seen[refusal[:30]] += 1
                assert await database_dump(world.sessions) == dump

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\n/admin edit ({world.database}): {dict(seen)}")
    assert seen["edited"] >= 2 and len(seen) >= 3


# Forged custom_ids: (template, who presses, select values or None for a button, whether the id of a row
# that is missing must be refused with one of the bot's sentences); {id} is where a number goes.
FORGED = [
    ("lt:b:confirm:{id}:0.4----------", "mallory", None, True),
    ("lt:b:skip:{id}:", "mallory", None, True),
    ("lt:b:skipnow:{id}:", "mallory", None, True),
    ("lt:b:rankok:{id}:AB", "mallory", None, True),
    ("lt:b:write:{id}:p", "mallory", None, True),  # opens the form at once; the submission is refused
    ("lt:s:label:{id}:0.-:0", "mallory", ["0"], True),
    ("lt:s:skipwhy:{id}::", "mallory", ["unclear"], True),
    ("adm:ok:del:{id}", "mod", None, True),
    ("adm:ok:halt:{id}", "mod", None, True),
    ("adm:ok:banauthor:{id}", "mod", None, True),
    ("adm:ok:del:{id}", "mallory", None, True),
    ("adm:ok:ban:{id}:spam", "mallory", None, True),
    ("adm:fq:keep:{id}:0", "mod", None, True),
    ("adm:fq:del:{id}:0", "mod", None, True),
    ("adm:fq:ban:{id}:0", "mod", None, False),  # asks to confirm first
    ("adm:pg:flagged:{id}:0:r", "mod", None, False),  # a page number: a page past the end is empty
    ("adm:pg:audit:0:{id}:n", "mod", None, False),  # a member filter
    ("chat:up:{id}", "mallory", None, True),  # the chat is off in this world: no item takes it
    ("tut:{id}", "mallory", None, False),
    ("board:all:{id}:1f", "mallory", None, False),
    ("lp:m:{id}", "mallory", None, True),  # a form's id on a button
    ("lt:x:{id}", "mallory", None, True),
    ("zz:{id}", "mallory", None, True),
]
# Where {id} is a Discord id (64 bits) rather than one of our row ids (32 bits).
DISCORD_ID_SLOTS = {"adm:ok:ban:{id}:spam", "adm:pg:audit:0:{id}:n"}
FORMS = [("lt:m:{id}:p", "lt:text", "mallory"), ("lp:m:{id}:a", "lt:text", "mallory"),
         ("adm:edit:{id}", "adm:text", "mod"), ("adm:edit:{id}", "adm:text", "mallory")]
NEVER = 10**9  # an id no row has


def forged_ids(world: World) -> st.SearchStrategy[tuple[str, str, str]]:
    """(kind of value, the value, the row it names, if any) for the {id} of a template."""
    letters = st.one_of(
        st.sampled_from(["abc", "1e9", "NaN", "0x10", " 1", "1 ", "١٢", "1.0", "", "+1", "1_000", "٣"]),
        hostile_texts(world).map(lambda t: t[:30]).filter(lambda t: ":" not in t and not (t.isascii() and t.isdigit())),
    )
    values = {
        "letters": letters.map(lambda v: ("letters", v, "")),
        "huge": st.one_of(st.integers(2**63, 2**200), st.sampled_from([2**63, 2**64, 10**19]))
        .map(lambda n: ("huge", str(n), "")),
        "negative": st.integers(-(2**70), -1).map(lambda n: ("negative", str(n), "")),
        # Beyond our 32-bit row ids (PostgreSQL's integer columns), a Discord id's size.
        "wide": st.one_of(st.integers(2**31, 2**63 - 1), st.just(2**31)).map(lambda n: ("wide", str(n), "")),
        "row": st.sampled_from(["foreign_task", "deleted_task", "removed", "never"])
        .map(lambda name: ("row", str(world.ids.get(name, NEVER)), name)),
    }
    # Rows twice as often: there the services answer.
    return st.sampled_from(["letters", "huge", "negative", "wide", "row", "row"]).flatmap(values.__getitem__)


def forgery(template: str, who: str, row: str) -> bool:
    """Whether pressing this as ``who`` is a forgery rather than someone using their rights: a moderator
    naming an existing row acts on it (only an id no row has, or for message ids the removed message,
    is refused)."""
    if who != "mod" or not row or row == "never":
        return True
    return row == "removed" and template.startswith(("adm:ok:del:", "adm:fq:keep:", "adm:fq:del:"))


def test_forged_custom_ids_are_refused_and_change_nothing(world):
    seen: Counter = Counter()
    users = {"mallory": world.mallory, "mod": world.mod}

    @fuzz_settings(150)
    @given(forged=st.sampled_from(FORGED), value=forged_ids(world))
    def fuzz(forged, value):
        template, who, values, missing_refused = forged
        kind, number, row = value
        assume(forgery(template, who, row))
        custom_id = template.format(id=number)[:100]

        async def run():
            message = bot_message(world, world.guild.channel("general"))
            dump = await database_dump(world.sessions)
            pressed = await press(users[who], message, custom_id, values)
            answer_kind, shown = await first_answer(world, pressed, len(message.history))
            if answer_kind == "modal":  # Write opens the form without a lookup; the submission is checked
                shown = None
                submitted = submit_form(world, users[who], pressed.modal["custom_id"], "lt:text", FINE_TEXT, pressed)
                refusal = refusal_in(await echoed(world, submitted, FINE_TEXT))
            else:
                assert answer_kind == "update" or shown.ephemeral
                refusal = refusal_in(shown_text(shown))
            if kind != "row" and not (kind == "wide" and template in DISCORD_ID_SLOTS):
                assert refusal == STALE_COMPONENT, (custom_id, shown_text(shown) if shown else None)
            elif missing_refused:
                assert refusal is not None, (custom_id, shown_text(shown) if shown else None)
            if shown is not None:
                assert not shown_text(shown).startswith(GENERIC)
            seen[f"{template.split(':')[0]} {kind}: {(refusal or 'shown')[:25]}"] += 1
            assert await database_dump(world.sessions) == dump

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\nforged custom_ids ({world.database}):" + tally(seen))
    assert sum(n for what, n in seen.items() if STALE_COMPONENT[:25] in what) >= 5


def test_forged_form_ids_give_the_text_back_and_change_nothing(world):
    seen: Counter = Counter()
    users = {"mallory": world.mallory, "mod": world.mod}

    @fuzz_settings(60)
    @given(form=st.sampled_from(FORMS), value=forged_ids(world))
    def fuzz(form, value):
        template, input_id, who = form
        kind, number, row = value
        assume(who != "mod" or row in ("", "never"))  # a moderator correcting a real message is no forgery
        custom_id = template.format(id=number)[:100]

        async def run():
            dump = await database_dump(world.sessions)
            submitted = submit_form(world, users[who], custom_id, input_id, FINE_TEXT, None)
            answer_kind, answer = await first_answer(world, submitted)
            assert answer_kind == "message" and answer.ephemeral
            if template.startswith("adm:") and who == "mallory":
                assert answer.content == NOT_MODERATOR
            elif template.startswith("adm:"):
                assert refusal_in(answer.content) and answer.content.endswith("Your text is attached."), answer.content
                assert answer.attachments[0].data.decode() == FINE_TEXT
                if kind != "row":
                    assert answer.content.startswith(ADMIN_STALE_FORM)
            else:
                description = await echoed(world, submitted, FINE_TEXT)
                assert refusal_in(description), description
                if kind != "row":
                    assert description.startswith(STALE_FORM)
            seen[f"{template.split(':')[0]}:{template.split(':')[1]} {kind}"] += 1
            assert await database_dump(world.sessions) == dump

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\nforged form ids ({world.database}): {dict(sorted(seen.items()))}")
    assert len(seen) >= 6


def test_post_buttons_pressed_by_anyone_anywhere(world):
    seen: Counter = Counter()
    users = {"member": world.member, "mallory": world.mallory, "mod": world.mod}

    @fuzz_settings(60)
    @given(kind=st.sampled_from(sorted(world.posts)), button=st.sampled_from(["its own", "write", "review", "rank"]),
           who=st.sampled_from(sorted(users)), on_post=st.sampled_from([True, True, False]),
           text=st.one_of(hostile_texts(world), refused_texts().map(lambda refused: refused[1])))
    def fuzz(kind, button, who, on_post, text):
        post = world.posts[kind]
        user = users[who]
        action = POST_BUTTONS[kind] if button == "its own" else button

        async def run():
            message = post if on_post else bot_message(world, world.emu.channels[post.channel_id])
            dump = await database_dump(world.sessions)
            pressed = await press(user, message, f"lp:{action}")
            answer_kind, shown = await first_answer(world, pressed, len(message.history))
            if answer_kind == "modal":
                dump = await database_dump(world.sessions)  # the task was taken; now the text
                submitted = submit_form(world, user, shown["custom_id"], "lt:text", text[:4000], pressed)
                _kind, note = await first_answer(world, submitted)
                title = note.embeds[0]["title"]
                assert note.ephemeral and title in ("Thank you, recorded!", ECHO_TITLE), title
                if title == ECHO_TITLE:
                    assert refusal_in(note.embeds[0]["description"]), note.embeds[0]["description"]
                    assert await database_dump(world.sessions) == dump
                seen[f"{action} form: {title}"] += 1
                return
            assert answer_kind == "message" and shown.ephemeral
            if shown.embeds:  # a task to work on, shown only to the member
                assert any(c.startswith("lt:") for c in shown.custom_ids), shown.custom_ids
                seen[f"{action}: a task"] += 1
                return
            refusal = refusal_in(shown.content)
            assert refusal, shown.content
            seen[f"{action}: {refusal[:40]}"] += 1
            assert await database_dump(world.sessions) == dump

        before = len(world.emu.calls)
        world.run(run())
        check_world(world, before)

    fuzz()
    print(f"\npost buttons ({world.database}):" + tally(seen))
    assert any("form" in what for what in seen) and any("task" in what for what in seen)
    assert any(what.startswith(("write: This is not", "review: This is not")) for what in seen)

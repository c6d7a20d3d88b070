"""`oabot playground` in a real headless browser: people click through the web client as they would on
Discord, and the database holds what the page showed.

Debian's Chromium driven by Playwright for Python (Playwright's own browser download cannot work
here). One browser, one page; each step is a function so more steps slot in as the bot grows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright import sync_api as playwright_api

import bot
from bot.playground import USER_IDS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPLY = "Read a page of a simple book every day, and say each new sentence out loud."
QUESTION = "In three sentences, tell a story about a cat who learns to swim."
# Waits for the bot: generous because two cores are shared with other work; nothing here is timed.
SLOW = 120_000

# CI sets OABOT_REQUIRE_BROWSER: there a missing browser is a failure, elsewhere a skip.
BROWSER_MISSING = not Path(CHROMIUM).exists() and not os.environ.get("OABOT_REQUIRE_BROWSER")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER_MISSING, reason="Debian's chromium is not installed (`apt-get install chromium`)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """`oabot playground` as a user starts it; stopped with Ctrl-C (SIGINT) at the end, which must be clean."""
    folder = tmp_path_factory.mktemp("playground")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OABOT_", "DISCORD_TOKEN"))}
    env["OABOT_CHAT__SEED"] = "7"  # the same answer every run
    env["OABOT_CHAT__MAX_REPLY_TOKENS"] = "160"  # long enough to stream, short on a busy machine
    # The same code as this test process imported (the source tree in a checkout).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(bot.__file__).resolve().parents[1]),
                                                      env.get("PYTHONPATH")]))
    database = folder / "playground.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", "playground",
         "--port", str(free_port()), "--db", str(database)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=(folder / "stderr.log").open("w"), text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"open (http://\S+) in a browser", line)
    assert match, f"no URL line: {line!r}; {(folder / 'stderr.log').read_text()[-3000:]}"
    try:
        yield {"url": match[1], "db": database, "folder": folder}
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        log = (folder / "stderr.log").read_text()
        assert code == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def browser_page(playground, tmp_path_factory):
    with playwright_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 860},
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(playground["url"])
        page.wait_for_selector('body[data-loading="0"]', timeout=SLOW)
        yield page
        context.close()
        assert errors == [], errors


class Person:
    """Clicks in the web client like a person: picks who they are and where, types commands, presses
    buttons, fills in forms. Every wait is for something visible on the page."""

    def __init__(self, page, shots: Path) -> None:
        self.page, self.shots, self.count, self.me = page, shots, 0, None

    def screenshot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def loaded(self) -> None:
        """Wait until the page has drawn the messages of the channel it switched to."""
        self.page.wait_for_selector('body[data-loading="0"]', timeout=SLOW)

    def act_as(self, username: str) -> None:
        self.me = str(USER_IDS[username])
        self.page.select_option("#member", value=self.me)
        self.loaded()

    def open(self, channel: str) -> None:
        """A guild channel by name, or "dm" for the direct messages with the bot."""
        self.page.click(f'#sidebar li[data-channel="{channel}"]')
        self.loaded()

    def slash(self, command: str, **options: str):
        """Type /command, choose it from the list, fill its options (by choice label or text), send; returns
        the bot's answer, the newest of its messages after the command."""
        before = self.bot_message_ids()
        self.page.fill("#input", "")
        self.page.type("#input", "/")
        self.page.click(f'#command-list li[data-command="{command}"]')
        for name, value in options.items():
            field = self.page.locator(f'#command-form [name="opt-{name}"]')
            if field.evaluate("el => el.tagName") == "SELECT":
                field.select_option(label=value)
            else:
                field.fill(value)
        self.page.click('[data-testid="run-command"]')
        return self.new_bot_message(before, answering=self.me)

    def bot_message_ids(self, answering: str | None = None) -> set[str]:
        """The bot's messages on the page; with `answering`, only its answers to that member's interactions."""
        css = '#messages li[data-author="oabot"]' + (f'[data-answers="{answering}"]' if answering else "")
        return set(self.page.eval_on_selector_all(css, "els => els.map(e => e.dataset.messageId)"))

    def new_bot_message(self, before: set[str], answering: str | None = None):
        """The newest bot message not in `before` (and answering this member, if given), once filled in."""
        css = '#messages li[data-author="oabot"]' + (f'[data-answers="{answering}"]' if answering else "")
        self.page.wait_for_function(
            """([css, known]) => [...document.querySelectorAll(css)]
                 .some(e => !known.includes(e.dataset.messageId) && !e.querySelector('.loading'))""",
            arg=[css, sorted(before)], timeout=SLOW)
        newest = [i for i in self.bot_message_ids(answering) if i not in before]
        return self.message(max(newest, key=int))

    def message(self, message_id: str):
        return self.page.locator(f"#m-{message_id}")

    def revisions(self, message) -> int:
        return int(message.get_attribute("data-revisions"))

    def changed(self, message, action) -> None:
        """Do `action` and wait until the bot has edited `message` (its revision count grows)."""
        before = self.revisions(message)
        action()
        self.page.wait_for_function(
            "([id, n]) => { const el = document.getElementById('m-' + id); return el && +el.dataset.revisions > n; }",
            arg=[message.get_attribute("data-message-id"), before], timeout=SLOW)

    def press(self, message, label: str) -> None:
        self.changed(message, lambda: message.get_by_role("button", name=label, exact=True).click())

    def pick(self, message, css: str, label: str) -> None:
        """Choose `label` in the dropdown matching `css` (custom_ids carry state, so match their stable parts)."""
        select = message.locator(css).first
        self.changed(message, lambda: select.select_option(label=label))

    def write_in_modal(self, message, button: str, text: str) -> None:
        message.get_by_role("button", name=button, exact=True).click()
        self.page.wait_for_selector("dialog#modal[open]")
        self.page.fill("dialog#modal textarea", text)
        self.screenshot("modal")
        self.changed(message, lambda: self.page.click('[data-testid="modal-submit"]'))

    def embed_text(self, message) -> str:
        return " ".join(message.locator('[data-testid="embed"]').all_inner_texts())


def db_rows(database: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql, params).fetchall()


def user_id(database: Path, username: str) -> int:
    return db_rows(database, "SELECT id FROM users WHERE discord_id = ?", USER_IDS[username])[0][0]


# ---- the steps -----------------------------------------------------------------------------------------------

def member_writes_a_reply(person: Person, db: Path) -> None:
    person.act_as("alice")
    person.open("tasks")
    task = person.slash("task", kind="reply as assistant")
    assert "Reply as the assistant" in person.embed_text(task)
    person.write_in_modal(task, "Write", REPLY)
    assert "4 points" in person.embed_text(task)
    person.screenshot("reply-written")
    [(text, role)] = db_rows(db, "SELECT text, role FROM messages WHERE author_id = ?", user_id(db, "alice"))
    assert (text, role) == (REPLY, "assistant")


def another_member_reviews(person: Person, db: Path) -> None:
    person.act_as("bob")
    task = person.slash("task", kind="review")
    assert "Review" in person.embed_text(task)
    while True:
        questions = task.locator('select[data-custom-id^="lt:s:label:"]').evaluate_all(
            "els => els.map(e => e.dataset.customId.split(':').pop())")
        for arg in questions:
            css = f'select[data-custom-id^="lt:s:label:"][data-custom-id$=":{arg}"]'
            labels = task.locator(f"{css} option:not([disabled])").all_inner_texts()
            # No to every yes/no question, 4 of 5 on every scale.
            person.pick(task, css, "No" if labels == ["Yes", "No"] else labels[3])
        more = task.get_by_role("button", name=re.compile(r"^More questions"))
        if more.count() == 0:
            break
        person.changed(task, lambda more=more: more.click())
    person.press(task, "Confirm")
    assert "Thank you" in person.embed_text(task) or "point" in person.embed_text(task)
    person.screenshot("review-confirmed")
    assert db_rows(db, "SELECT count(*) FROM labels WHERE user_id = ?", user_id(db, "bob"))[0][0] > 0


def another_member_ranks(person: Person, db: Path) -> None:
    task = person.slash("task", kind="rank")
    assert "Rank the assistant replies" in person.embed_text(task)
    letters = []
    while task.locator('select[data-custom-id^="lt:s:rank:"]').count():
        choices = task.locator('select[data-custom-id^="lt:s:rank:"] option:not([disabled])').all_inner_texts()
        letters.append(choices[-1])  # the last reply shown first: an order of our own
        person.pick(task, 'select[data-custom-id^="lt:s:rank:"]', choices[-1])
    person.screenshot("ranking-chosen")
    person.press(task, "Confirm")
    assert "Thank you, recorded!" in person.embed_text(task)
    [(ordered,)] = db_rows(db, "SELECT ordered_ids FROM rankings WHERE user_id = ?", user_id(db, "bob"))
    assert ordered


def the_page_shows_what_the_database_holds(person: Person, db: Path) -> None:
    profile = person.slash("profile")
    [(points,)] = db_rows(db, "SELECT points FROM users WHERE discord_id = ?", USER_IDS["bob"])
    assert points > 0
    assert f"{points:g}" in person.embed_text(profile)


def dm_chat_streams_an_answer(person: Person, db: Path) -> None:
    person.act_as("carol")
    person.open("dm")
    # Every text the page shows for the bot's messages, as it changes: streamed edits must appear live.
    person.page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => document.querySelectorAll('#messages li[data-author="oabot"] .content')
            .forEach(el => window.seen.push([el.closest('li').dataset.messageId, el.innerText])))
          .observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
    }""")
    before = person.bot_message_ids()
    person.page.fill("#input", QUESTION)
    person.page.press("#input", "Enter")
    answer = person.new_bot_message(before)
    # The answer is complete when its rating buttons appear; the page saw it grow edit by edit.
    answer.locator(".row button").first.wait_for(timeout=SLOW)
    person.screenshot("dm-chat")
    message_id = answer.get_attribute("data-message-id")
    assert person.revisions(answer) >= 2
    [(text, state)] = db_rows(db, "SELECT text, state FROM chat_messages WHERE discord_message_id = ?", int(message_id))
    assert state == "complete"
    shown = answer.locator(".content").first.inner_text()

    def words(s: str) -> str:
        return " ".join(re.sub(r"[*_`#>]", " ", s).split())

    assert words(text) == words(shown)
    assert "cat" in text.lower()
    # While it was written, the page showed the answer growing (the bot's cursor ▌ marks a partial one).
    shown_live = [seen for seen_id, seen in person.page.evaluate("window.seen") if seen_id == message_id]
    partial = [seen for seen in shown_live if seen.endswith("▌")]
    assert partial and all(words(p.rstrip("▌")) in words(text) for p in partial), shown_live


def reactions_are_added_and_removed(person: Person, db: Path) -> None:
    """The reaction UI as on Discord, on a member's message."""
    person.act_as("dave")
    person.open("general")
    person.page.fill("#input", "Who wants to rank some replies tonight?")
    person.page.press("#input", "Enter")
    said = person.page.locator('#messages li[data-author="dave"]').last
    said.wait_for()
    person.act_as("carol")
    said = person.page.locator('#messages li[data-author="dave"]').last
    said.hover()
    said.locator('[data-testid="add-reaction"]').click()
    said.locator('[data-add-emoji="👍"]').click()
    chip = person.page.locator('#messages li[data-author="dave"]').last.locator('[data-emoji="👍"]')
    playwright_api.expect(chip).to_have_text("👍 1")
    playwright_api.expect(chip).to_have_class("mine")
    person.screenshot("reaction")
    chip.click()  # carol takes hers back
    playwright_api.expect(person.page.locator('#messages li[data-author="dave"]').last.locator(
        '[data-emoji="👍"]')).to_have_count(0)


def reaction_vote_is_counted(person: Person, db: Path) -> None:
    """#tasks gets the bot's task posts; a 👍 on one is a vote the database records."""
    person.act_as("dave")
    person.open("tasks")
    post = person.page.locator('#messages li[data-author="oabot"]:not(.ephemeral)').first
    post.wait_for(timeout=SLOW)
    post.hover()
    post.locator('[data-testid="add-reaction"]').click()
    post.locator('[data-add-emoji="👍"]').click()
    playwright_api.expect(post.locator('[data-emoji="👍"]')).to_have_class("mine")
    person.screenshot("reaction-vote")
    votes = "SELECT count(*) FROM reactions r JOIN users u ON u.id = r.user_id WHERE u.discord_id = ?"
    deadline = time.monotonic() + SLOW / 1000
    while db_rows(db, votes, USER_IDS["dave"])[0][0] == 0:
        assert time.monotonic() < deadline, "the vote never reached the database"
        time.sleep(0.2)


def moderator_sees_the_stats_chart(person: Person, db: Path) -> None:
    person.act_as("mod")
    person.open("tasks")  # /admin is offered in the guild only
    stats = person.slash("admin stats")
    text = person.embed_text(stats)
    assert "Campaign statistics" in text
    [(trees,)] = db_rows(db, "SELECT count(*) FROM message_trees")
    assert f"Trees ({trees})" in text
    chart = stats.locator('[data-testid="embed"] img')
    chart.wait_for(timeout=SLOW)
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0")  # the PNG arrived and decoded
    person.screenshot("admin-stats")


STEPS = [
    member_writes_a_reply,
    another_member_reviews,
    another_member_ranks,
    the_page_shows_what_the_database_holds,
    dm_chat_streams_an_answer,
    reactions_are_added_and_removed,
    reaction_vote_is_counted,
    moderator_sees_the_stats_chart,
]


def test_people_use_the_whole_bot_in_a_browser(playground, browser_page, tmp_path):
    person = Person(browser_page, tmp_path)
    for step in STEPS:
        step(person, playground["db"])
    # The README's quick start shows the playground as a person uses it: a review task, with its questions.
    person.act_as("alice")
    person.open("tasks")
    task = person.slash("task", kind="review")
    assert "Review" in person.embed_text(task)
    shot = person.screenshot("quick-start")
    if os.environ.get("OABOT_SCREENSHOT_TO"):
        shutil.copyfile(shot, os.environ["OABOT_SCREENSHOT_TO"])

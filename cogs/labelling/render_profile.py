"""Embeds for the member-facing views: leaderboard pages, profiles, the work overview, settings, help.

Names arrive already resolved (see ``names.py``); everything a member wrote is escaped, so a name can
neither format the embed nor look like a mention.
"""

from __future__ import annotations

from collections.abc import Mapping

import discord

from bot.config import PointsSettings
from bot.labelling.members import BoardLine, BoardPage, MemberSettings, Profile, Progress, TasksOverview

COLOUR = discord.Colour.blurple()
PERIOD_TITLES = {"day": "the last 24 hours", "week": "the last 7 days", "month": "the last 30 days", "all": "all time"}
PERIOD_SHORT = {"day": "Day", "week": "Week", "month": "Month", "all": "All time"}
WORK_GROUPS = {
    "rank": "Rank replies from best to worst",
    "label_reply": "Review a reply",
    "label_prompt": "Review a new prompt",
    "reply": "Write a reply (as the assistant or as the user)",
    "initial_prompt": "Write a new prompt",
}
TREE_STATES = {
    "initial_prompt_review": "prompt in review",
    "prompt_lottery_waiting": "waiting to start",
    "growing": "growing",
    "ranking": "being ranked",
    "ready_for_scoring": "ready for scoring",
    "ready_for_export": "finished",
    "scoring_failed": "scoring to retry",
    "backlog_ranking": "backlog ranking",
    "aborted_low_grade": "rejected in review",
    "halted_by_moderator": "halted by a moderator",
}
LANGUAGE_SOURCES = {
    "option": "as you asked",
    "setting": "your /settings language",
    "locale": "your Discord language",
    "default": "the server's default",
}
BAR_CELLS = 10


def safe(text: str) -> str:
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def points_text(points: float) -> str:
    return f"{points:g}"


def bar(progress: Progress) -> str:
    filled = round(progress.fraction * BAR_CELLS)
    return "▰" * filled + "▱" * (BAR_CELLS - filled)


def _board_line(line: BoardLine, name: str, *, mine: bool) -> str:
    entry = line.entry
    text = f"`#{entry.rank:>3}` **{safe(name)}** · {points_text(entry.points)} pts · level {entry.level}"
    return f"{text}  ← you" if mine else text


def leaderboard_embed(board: BoardPage, names: Mapping[int, str], caller_discord_id: int) -> discord.Embed:
    embed = discord.Embed(title=f"Leaderboard: {PERIOD_TITLES[board.period]}", colour=COLOUR)
    if board.lines:
        embed.description = "\n".join(
            _board_line(line, names[line.entry.discord_id], mine=line.entry.discord_id == caller_discord_id)
            for line in board.lines
        )
    else:
        embed.description = "Nobody has earned points in this period yet. Be the first: use /task."
    standing = board.standing
    if standing.opted_out:
        mine = "You are not listed: you opted out (`/settings optout off` lists you again)."
    elif standing.banned:
        mine = "You are not listed: you are banned from the campaign."
    elif standing.line is None:
        mine = "No points in this period yet. Use /task to get on the board."
    else:
        entry = standing.line.entry
        mine = (f"#{entry.rank} of {board.ranked_users} · {points_text(entry.points)} pts · level {entry.level}"
                f" (page {(standing.page or 0) + 1})")
    embed.add_field(name="Your standing", value=mine, inline=False)
    embed.set_footer(text=f"Page {board.page + 1} of {board.pages} · {board.ranked_users} contributors")
    return embed


def _counts(profile: Profile) -> str:
    stats = profile.stats
    assert stats is not None
    return "\n".join((
        f"Prompts written: **{stats.prompts}**",
        f"Assistant replies: **{profile.assistant_replies}** · User replies: **{profile.prompter_replies}**",
        f"Reviews: **{stats.labels}** · Rankings: **{stats.rankings}** · Skipped: **{stats.skips}**",
    ))


def _agreement(profile: Profile, good_agreement: float) -> str:
    stats = profile.stats
    assert stats is not None
    if stats.mean_agreement is None:
        return "None of your rankings has been scored yet." if profile.own else "No ranking scored yet."
    return (f"Mean agreement with the consensus **{stats.mean_agreement:.2f}** · "
            f"**{stats.good_rankings}** of {stats.rankings} rankings good (above {good_agreement:g})")


def _ranks(profile: Profile) -> str:
    stats = profile.stats
    assert stats is not None
    if profile.opted_out:
        return "Not listed (opted out)."
    parts = []
    for period, label in PERIOD_SHORT.items():
        rank, points = stats.ranks.get(period, (None, 0.0))
        parts.append(f"{label}: " + ("–" if rank is None else f"#{rank} ({points_text(points)} pts)"))
    return " · ".join(parts)


def _history(profile: Profile) -> str:
    lines = []
    for line in profile.history:
        why = line.explanation + (f" ({safe(line.detail)})" if line.detail else "")
        # Signed: a moderator's deletion takes points back as a negative event.
        lines.append(f"{round(line.points, 2):+g} {why} · {discord.utils.format_dt(line.created_at, 'R')}")
    return "\n".join(lines) or "–"


def profile_embed(profile: Profile, name: str, good_agreement: float) -> discord.Embed:
    embed = discord.Embed(title=f"{safe(name)}: profile", colour=COLOUR)
    if not profile.contributed:
        embed.description = (
            "Nothing yet! Use /task to get your first task (and /tutorial for a short walk through)."
            if profile.own else f"{safe(name)} has not contributed yet."
        )
        return embed
    stats, progress = profile.stats, profile.progress
    assert stats is not None and progress is not None
    if progress.next_level_points is None:
        level = f"Level **{progress.level}** (the highest) · {points_text(progress.points)} points"
    else:
        level = (f"Level **{progress.level}** · {points_text(progress.points)} points\n{bar(progress)} "
                 f"{points_text(round(progress.next_level_points - progress.points, 2))} to level {progress.level + 1}")
    embed.add_field(name="Level", value=level, inline=False)
    days = stats.streak_days
    embed.add_field(name="Streak", value=f"{days} day{'s' if days != 1 else ''}", inline=True)
    embed.add_field(name="Rank", value=_ranks(profile), inline=False)
    embed.add_field(name="Contributions", value=_counts(profile), inline=False)
    embed.add_field(name="Ranking agreement", value=_agreement(profile, good_agreement), inline=False)
    embed.add_field(name="Recent points", value=_history(profile)[:1024], inline=False)
    if profile.opted_out:
        embed.set_footer(text="Only you can see this: you opted out of exports and leaderboards.")
    return embed


def tasks_embed(overview: TasksOverview) -> discord.Embed:
    source = LANGUAGE_SOURCES[overview.language_source]
    embed = discord.Embed(title=f"Work for you in {overview.lang} ({source})", colour=COLOUR)
    lines = [
        ("✅ " if overview.available.get(group) else "▫️ ") + label
        + ("" if overview.available.get(group) else " · nothing right now")
        for group, label in WORK_GROUPS.items()
    ]
    embed.description = "\n".join(lines)
    trees = overview.trees_by_state
    embed.add_field(
        name=f"Conversation trees in {overview.lang}",
        value="\n".join(f"{TREE_STATES.get(state, state)}: **{count}**" for state, count in sorted(trees.items()))
        or "None yet: write the first prompt!",
        inline=False,
    )
    embed.set_footer(text="Use /task to get a task (pick a kind or let me choose); /settings language changes "
                          "the language.")
    return embed


def settings_embed(settings: MemberSettings) -> discord.Embed:
    embed = discord.Embed(title="Your settings", colour=COLOUR)
    language = (f"**{settings.language}** (chosen with /settings language)" if settings.language
                else f"**{settings.effective_language}** (following your Discord language)")
    embed.add_field(name="Labelling language", value=language, inline=False)
    embed.add_field(
        name="Opt-out",
        value="**On**: your contributions and chats stay out of exports, and you are not listed on leaderboards."
        if settings.opted_out else "**Off**: your contributions can be exported (under a pseudonym) and you are "
        "listed on leaderboards.",
        inline=False,
    )
    return embed


def points_table(points: PointsSettings) -> str:
    again = "(as much again once it passes review)"
    placement = " / ".join(points_text(p) for p in points.placement)
    return "\n".join((
        f"Write a prompt: **{points_text(points.initial_prompt)}** {again}",
        f"Write an assistant reply: **{points_text(points.assistant_reply)}** {again}",
        f"Write a user reply: **{points_text(points.prompter_reply)}** {again}",
        f"Review a message: **{points_text(points.label_simple)}** (simple) or "
        f"**{points_text(points.label_full)}** (full)",
        f"Rank replies: **{points_text(points.ranking)}**, plus up to "
        f"**{points_text(points.ranking_agreement_bonus)}** as your order agrees with the consensus",
        f"Each ranking that puts your reply 1st / 2nd / 3rd: **{placement}**",
    ))

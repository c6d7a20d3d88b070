"""The labelling engine: trees, tasks, reviews, rankings, consensus, points, export (no Discord).

Cogs use ``bot.labelling.service.LabellingService`` (one method, one transaction); refusals are
``bot.labelling.errors.LabellingError`` subclasses with a ``reason`` code and a polite ``message``.
Modules: ``tasks`` (selection), ``submissions``, ``trees`` (lifecycle), ``consensus`` (ranked pairs,
agreement), ``points`` / ``leaderboard``, ``votes``, ``moderation``, ``jobs`` (scheduler jobs),
``simulator`` (``oabot simulate``), ``export`` (``oabot export``).
"""

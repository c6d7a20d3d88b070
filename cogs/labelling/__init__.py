"""Discord adapters of the labelling campaign: one small cog per area (tasks, tutorial, leaderboard and
profile, member settings, help), shared rendering beside them."""

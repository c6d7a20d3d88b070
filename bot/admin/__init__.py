"""Discord-free services for moderators: guild configuration, and (with the /admin cogs) the actions,
queues, stats and exports they run. Every change a moderator makes is written to the audit log."""

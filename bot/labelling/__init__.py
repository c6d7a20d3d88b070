"""The labelling engine: trees, tasks, reviews, rankings, consensus, points, export (no Discord)."""

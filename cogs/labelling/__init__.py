"""Labelling cogs: tasks, the member-facing views and settings, help."""

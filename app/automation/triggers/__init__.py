"""Triggers: what starts a workflow (AUTO-2)."""

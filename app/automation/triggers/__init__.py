"""Triggers: what starts a workflow."""

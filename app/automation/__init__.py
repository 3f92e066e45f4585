"""The domain: triggers start executions, the engine walks nodes, actions act.

Nothing in this package touches ``flask.request``; views and jobs call in.
"""

"""A firm's accounts: its users and their API tokens (``users.py``),
created the same way by the admin page and the ``automation`` CLI."""

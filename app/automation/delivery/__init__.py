"""Outgoing messages: the outbox and what drains it.

- :mod:`.outbox` renders an e-mail, SMS or webhook step into an
  ``OutboxMessage`` row (written by the engine in the step's transaction).
- :mod:`.dispatcher` sends due rows, each exactly once in effect.
- :mod:`.smtp`, :mod:`.sms`, :mod:`.webhook` are the transports;
  :mod:`.signing` is Standard Webhooks signing and verification.
"""

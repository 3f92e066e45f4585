"""Audiences: saved dynamic segments (docs/CONTRACT.md "Experiments,
audiences, forecasts, integrations"): saving (``saving``), live counts and
samples (``counting``), who is in one now and the segment events
(``membership``), "enroll this audience now" (``enroll``)."""

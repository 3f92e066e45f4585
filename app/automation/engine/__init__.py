"""The execution engine.

Executions advance in batches: a job (:mod:`.jobs`) claims ready rows
(:mod:`.claim`), loads what the batch needs (:mod:`.state`,
:mod:`.context`), walks each execution in memory until a wait, the end or
a failure (:mod:`.walk`) and writes everything back in one transaction
(:mod:`.write`, :mod:`.bulk`, with :mod:`.batch` tying them together).
Starting executions is :mod:`.enrollment`; waking waiting ones is
:mod:`.wakes` and the periodic :mod:`.sweeper`; an operator's cancel and
retry are :mod:`.operator` and :mod:`.retry`; :mod:`.test_runs` runs one
contact with nothing leaving; :mod:`.timeline` reads back what happened.
"""

"""A workflow's graph: its definition (:mod:`.definition`), the rows that
store it (:mod:`.rows`), the document the builder and API exchange
(:mod:`.document`), its checks (:mod:`.validation`, :mod:`.node_checks`)
and the undo/redo history of its edits (:mod:`.edit_history`)."""

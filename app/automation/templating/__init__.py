"""Message templating: :mod:`.render` (Jinja2 in a sandbox, :mod:`.sandbox`)
and the size and cost limits a template must keep (:mod:`.limits`)."""

"""A workflow's life: create, rename, delete (:mod:`.workflow_ops`), activate,
publish and roll back (:mod:`.publishing`), versions and their diffs
(:mod:`.versions`), approvals, comments, import/export (:mod:`.portability`)
and the gallery of ready-made workflows (:mod:`.gallery`)."""

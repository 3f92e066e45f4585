"""The one rules evaluator (:mod:`.evaluator`) and the JSON schema of a rule
group (:mod:`.schema`)."""

"""Every outgoing message passes these gates, in this order (docs/SENDING.md):
suppression -> consent -> send window -> frequency cap -> firm pause -> rate
limit. A module registers its gate when imported: the imports below are the
order of the chain."""

from app.automation.delivery.gates import (
    consent,  # noqa: F401  (2: topic, opt-outs)
    suppression,  # noqa: F401  (1: the address)
)
from app.automation.delivery.gates.chain import (
    CHAIN,
    SEND,
    Candidate,
    Gate,
    GateRun,
    Verdict,
    defer,
    normalize_address,
    register,
    skip,
)

__all__ = [
    "CHAIN",
    "SEND",
    "Candidate",
    "Gate",
    "GateRun",
    "Verdict",
    "defer",
    "normalize_address",
    "register",
    "skip",
]

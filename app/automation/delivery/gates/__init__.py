"""Every outgoing message passes these gates, in this order (docs/SENDING.md):
suppression -> consent -> send window -> frequency cap -> firm pause -> warm-up
-> rate limit. A module registers its gate when imported, and imports the module of
the gate before it, so the chain keeps its order whatever order the imports
below are sorted in."""

from app.automation.delivery.gates import (
    cap,  # noqa: F401  (4: frequency caps, priority)
    consent,  # noqa: F401  (2: topic, opt-outs)
    pause,  # noqa: F401  (5: the firm's sending paused)
    rate,  # noqa: F401  (7: the global rate limit)
    suppression,  # noqa: F401  (1: the address)
    warmup,  # noqa: F401  (6: a new sending domain's daily allowance)
    window,  # noqa: F401  (3: send window)
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

"""Stage 4, approvals: signed statements bound to the digest, and the gate that judges them."""

"""Stage 5, apply: windows, locks, the journal, waves, and the run forward and back."""

"""Stage 2, render: the standard configuration each host gets, and what a change alters."""

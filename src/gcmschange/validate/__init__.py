"""Stage 1, validate: change requests checked against the schemas and the rules."""

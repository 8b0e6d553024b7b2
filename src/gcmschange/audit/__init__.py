"""Stage 7, audit: the hash-chained log, its anchors on the remote, and evidence bundles."""

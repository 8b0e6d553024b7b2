"""Analysis: a wave judged by how the service behaves under traffic (Prometheus), not only by
its files; the one room that talks to Prometheus."""

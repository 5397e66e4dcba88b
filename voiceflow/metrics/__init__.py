"""Per-turn timelines and latency figures."""

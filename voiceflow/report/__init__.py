"""Latency reports: per-turn waterfalls and per-stage percentiles from call timelines, as a
self-contained HTML page and a PNG (`voiceflow report`, `voiceflow run --report`)."""

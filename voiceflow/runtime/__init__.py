"""The session runtime: fallback chains, the reply pipeline, playback tracking, sessions."""

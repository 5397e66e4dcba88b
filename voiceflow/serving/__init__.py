"""Serving agents to live callers: one process, many agents, many calls (``voiceflow serve``).

:mod:`voiceflow.serving.api` is the seam a served transport plugs into (public, importable by
plugins without pulling in the web stack); the rest (the ASGI app, admission, drain, uvicorn) is
the serving process itself. Importing this package imports nothing heavy.
"""

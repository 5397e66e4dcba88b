"""Turn-taking: the state machine that decides who speaks, timers, and the conversation."""

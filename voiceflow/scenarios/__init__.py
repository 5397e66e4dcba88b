"""``voiceflow test``: scenario tests of an agent with a simulated caller on real audio.

A scenario file (:mod:`~voiceflow.scenarios.model`) scripts a caller whose every move is timed
from what the agent does; :func:`run_suite` plays each scenario as one call on the virtual clock
and checks what happened (:mod:`~voiceflow.scenarios.checks`); :mod:`~voiceflow.scenarios.report`
tells a person (or CI) the verdicts and, for a failure, who spoke when. ``docs/testing-agents.md``
is the guide.
"""

from voiceflow.scenarios.results import Outcome, ScenarioRun
from voiceflow.scenarios.runner import Suite, load_suite, run_suite, scenario_registry

__all__ = ["Outcome", "ScenarioRun", "Suite", "load_suite", "run_suite", "scenario_registry"]

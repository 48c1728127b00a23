"""End to end: the Prometheus rules and the Grafana dashboard in contrib/ against promtool and
a real Prometheus server scraping the installed daemon while it archives from the Perfecto
simulator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from archiver_sim.perfecto import PerfectoSimConfig, PerfectoSimulator
from archiver_sim.runner import SimulatorThread
from tests.support.cli import TOKEN, write_config
from tests.support.endpoints import RunningDaemon, free_port, get, running_daemon

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="prometheus and promtool are not installed",
)

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = CONTRIB / "prometheus"
DASHBOARD = CONTRIB / "grafana" / "archiver-dashboard.json"
ALERTS = {
    "ArchiverDown",
    "ArchiverNoSuccessfulPass",
    "ArchiverSessionFailuresGrowing",
    "ArchiverRateLimited",
    "ArchiverRetentionRace",
    "ArchiverLedgerHeadStuck",
}
KIB = 1024
EXECUTIONS = 5

T = TypeVar("T")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
    )


def eventually(check: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    """``check()``'s first answer other than None, tried every 0.2 s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@dataclass
class Prometheus:
    process: subprocess.Popen[str]
    base_url: str
    log: Path

    def api(self, path: str, **params: str) -> Any:
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = get(f"{self.base_url}/api/v1/{path}{query}")
        body = answer.json()
        assert answer.status == 200 and body["status"] == "success", (params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result


@dataclass
class Stack:
    daemon: RunningDaemon
    prometheus: Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The daemon archiving from the simulator, and Prometheus scraping it every second and
    evaluating contrib/prometheus/alerts.yml every second."""
    root = tmp_path_factory.mktemp("prometheus")
    simulator = PerfectoSimulator(
        PerfectoSimConfig(
            token=TOKEN, executions=EXECUTIONS, video_size=16 * KIB, artifact_size=4 * KIB
        )
    )
    daemon_port, prometheus_port = free_port(), free_port()
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        f"rule_files:\n  - {json.dumps(str(RULES / 'alerts.yml'))}\n"
        "scrape_configs:\n"
        "  - job_name: archiver\n"
        f'    static_configs:\n      - targets: ["127.0.0.1:{daemon_port}"]\n'
    )
    with SimulatorThread(simulator) as sim:
        deployment = write_config(
            root / "daemon",
            perfecto_url=sim.api_url,
            engine={"interval_seconds": 3600},
            extra=f'\n[metrics]\nlisten = "127.0.0.1:{daemon_port}"\n',
        )
        with running_daemon(deployment, daemon_port, root / "daemon.log") as daemon:
            log = root / "prometheus.log"
            with log.open("w") as output:
                process = subprocess.Popen(
                    [
                        "prometheus",
                        f"--config.file={config}",
                        f"--storage.tsdb.path={root / 'data'}",
                        f"--web.listen-address=127.0.0.1:{prometheus_port}",
                    ],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            try:
                prometheus = Prometheus(process, f"http://127.0.0.1:{prometheus_port}", log)

                def ready() -> bool | None:
                    assert process.poll() is None, log.read_text()[-3000:]
                    try:
                        return get(f"{prometheus.base_url}/-/ready").status == 200 or None
                    except OSError:
                        return None  # not listening yet

                eventually(ready, "Prometheus to be ready")
                yield Stack(daemon, prometheus)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def test_promtool_checks_the_rules() -> None:
    checked = promtool("check", "rules", "alerts.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_promtool_runs_the_rule_unit_tests() -> None:
    tested = promtool("test", "rules", "alerts.test.yml")

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_checks_the_example_config() -> None:
    checked = promtool("check", "config", "prometheus.yml")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout


def test_rule_unit_tests_cover_every_alert() -> None:
    text = (RULES / "alerts.test.yml").read_text()

    tested = set(re.findall(r"alertname: (\w+)", text))
    assert tested == ALERTS
    for alert in ALERTS:
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]", text), alert
        assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels:", text), alert


def test_prometheus_scrapes_the_daemon_and_evaluates_the_rules(stack: Stack) -> None:
    daemon, prometheus = stack.daemon, stack.prometheus
    daemon.wait_for("archiver_passes_total", 1, source="perfecto", result="ok")
    archived = len(daemon.deployment.manifests())
    assert archived == EXECUTIONS

    def scraped() -> float | None:
        result = prometheus.query('archiver_sessions_archived_total{source="perfecto"}')
        if len(result) == 1 and float(result[0]["value"][1]) == archived:
            assert result[0]["metric"]["job"] == "archiver"
            return archived
        return None

    eventually(scraped, f"Prometheus to see {archived} sessions archived")

    def evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules", type="alert")["groups"]
        archiver = [group for group in groups if group["name"] == "archiver"]
        if not archiver or any(rule["health"] == "unknown" for rule in archiver[0]["rules"]):
            return None  # not evaluated yet
        rules: list[dict[str, Any]] = archiver[0]["rules"]
        return rules

    rules = eventually(evaluated, "the archiver rules to be evaluated")
    assert {rule["name"] for rule in rules} == ALERTS
    for rule in rules:
        assert rule["health"] == "ok", rule
        assert rule.get("lastError", "") == "", rule

    # A healthy daemon: once the rules have seen the scraped data, no alert is even pending.
    def quiet() -> bool | None:
        return prometheus.api("alerts")["alerts"] == [] or None

    eventually(quiet, f"no pending alerts: {prometheus.api('alerts')}", timeout=10)


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    for panel in list(panels):
        panels.extend(panel.get("panels", []))
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert len(queries) >= 15, queries
    return queries


def concrete(expr: str) -> str:
    """A dashboard expression as Grafana sends it, with every source selected."""
    assert "$source" not in expr.replace('=~"$source"', ""), expr
    expr = expr.replace('=~"$source"', '=~".*"').replace("$__rate_interval", "1m")
    expr = expr.replace("$__range", "5m").replace("$__interval", "5m")
    assert "$" not in expr, expr
    return expr


def test_dashboard_queries_run_on_prometheus_over_the_daemons_metrics(stack: Stack) -> None:
    daemon, prometheus = stack.daemon, stack.prometheus
    exposition = daemon.wait_for("archiver_passes_total", 1, source="perfecto", result="ok")
    exposed = {
        line.partition("{")[0].partition(" ")[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    source_query = "label_values(archiver_sessions_archived_total, source)"
    assert variables["source"]["definition"] == source_query
    assert {entry["name"] for entry in dashboard["__inputs"]} == {"DS_PROMETHEUS"}

    queries = dashboard_queries()
    referenced = {name for expr in queries for name in re.findall(r"\barchiver_\w+", expr)}
    assert referenced <= exposed, sorted(referenced - exposed)
    for name in ("archiver_retention_seconds", "archiver_oldest_unarchived_session_age_seconds"):
        assert name in referenced

    # Every query parses and evaluates; once a few scrapes are in, each returns a series.
    for expr in map(concrete, queries):
        prometheus.query(expr)

    def answered() -> bool | None:
        return all(prometheus.query(concrete(expr)) for expr in queries) or None

    try:
        eventually(answered, "every dashboard query to return a series", timeout=15)
    except AssertionError:
        empty = [expr for expr in queries if not prometheus.query(concrete(expr))]
        raise AssertionError(f"dashboard queries with no series: {empty}") from None

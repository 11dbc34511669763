"""deploy/components/monitoring/ as the tests look at it: its objects, the alert rules,
the dashboard's queries and the metric names a PromQL expression reads."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from tests.unit.deploy.manifests import DEPLOY, Obj, find, load_yaml_documents

COMPONENT = DEPLOY / "components" / "monitoring"
RULE_TESTS = Path(__file__).parent / "alerts_test.yaml"
#: Seconds promtool may take for a check or the whole rule test file.
PROMTOOL_TIMEOUT_S = 120
#: What Grafana substitutes in a panel's query before sending it (a valid stand-in each).
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
#: Series Prometheus makes itself for every target (not exported by our daemons).
SCRAPE_SERIES = frozenset({"up"})


def component_objects() -> list[Obj]:
    spec = component_spec()
    return [obj for name in spec["resources"] for obj in load_yaml_documents(COMPONENT / name)]


def component_spec() -> Obj:
    (spec,) = load_yaml_documents(COMPONENT / "kustomization.yaml")
    return spec


def rule_groups() -> list[Obj]:
    groups: list[Obj] = find(component_objects(), "PrometheusRule")["spec"]["groups"]
    return groups


def alerts() -> list[Obj]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def dashboard() -> Obj:
    loaded: Obj = json.loads((COMPONENT / "dashboard.json").read_text(encoding="utf-8"))
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query with Grafana's variables substituted) of every panel target."""
    queries = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (promql-parser's syntax tree)."""
    return set(_selected(promql_parser.parse(expr)))


def _selected(node: Any) -> Iterator[str]:
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None and not isinstance(child, (int, float, str)):
            yield from _selected(child)
    for argument in getattr(node, "args", None) or []:
        yield from _selected(argument)


def used_metric_names() -> set[str]:
    """Every metric an alert or a dashboard panel reads."""
    expressions = [rule["expr"] for rule in alerts()] + [q for _, q in dashboard_queries()]
    return {name for expr in expressions for name in metric_names(expr)}


def promtool() -> str:
    """promtool's path; skips where it is absent (fails with REQUIRE_PROMTOOL=1, as in CI)."""
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not installed (Debian package prometheus)"
        if os.environ.get("REQUIRE_PROMTOOL") == "1":
            pytest.fail(f"REQUIRE_PROMTOOL=1 but {reason}")
        pytest.skip(reason)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )

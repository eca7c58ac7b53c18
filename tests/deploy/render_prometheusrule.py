"""Writes deploy/k8s/base/monitoring/prometheusrule.yaml from deploy/prometheus/rules.yml.

deploy/prometheus/rules.yml is the one source of the alerts (promtool checks and unit-tests
it); kustomize cannot read files outside its root, so the PrometheusRule is a generated copy.
Run `.venv/bin/python tests/deploy/render_prometheusrule.py` after editing the rules;
tests/deploy/test_manifests.py fails while the two differ.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
TARGET = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by tests/deploy/render_prometheusrule.py.
# Do not edit: edit rules.yml and run `.venv/bin/python tests/deploy/render_prometheusrule.py`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: spring
  labels:
    app.kubernetes.io/name: spring-alerts
spec:
"""


def render() -> str:
    """The PrometheusRule: rules.yml's text (less its comments) indented under `spec:`."""
    lines = [
        line
        for line in RULES.read_text().splitlines()
        if not line.lstrip().startswith("#") or line.startswith("        ")
    ]
    body = "".join(f"  {line}\n" if line.strip() else "\n" for line in lines)
    return HEADER + body


def main() -> None:
    TARGET.write_text(render())


if __name__ == "__main__":
    main()

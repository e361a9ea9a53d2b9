#!/usr/bin/env bash
# On-demand long fuzz run, on stable Rust (no nightly here, so no cargo-fuzz/libFuzzer): the
# proptest-driven driver in fuzz/src/bin/fuzz.rs, built optimized (opt-level 3, unwinding
# panics, debug assertions and overflow checks on) in its own profile and target directory
# (target/fuzz), so it never disturbs the dev or release builds.
#
#   fuzz/run.sh                         # 10M executions per target, 2 threads
#   fuzz/run.sh 1000000 admission plan  # 1M executions of two targets
#   FUZZ_JOBS=4 FUZZ_SEED=42 fuzz/run.sh
#
# Prints executions and executions/s per target; failing inputs are shrunk and written to
# fuzz/crashes/ (exit code 1). Turn each into a regression: fix, then copy the file into
# fuzz/corpus/<target>/ (tests/corpus.rs replays the corpora in CI).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
execs=${1:-10000000}
shift || true
export CARGO_PROFILE_FUZZ_INHERITS=release
export CARGO_PROFILE_FUZZ_OPT_LEVEL=3
export CARGO_PROFILE_FUZZ_LTO=false
export CARGO_PROFILE_FUZZ_CODEGEN_UNITS=16
export CARGO_PROFILE_FUZZ_PANIC=unwind
export CARGO_PROFILE_FUZZ_STRIP=false
export CARGO_PROFILE_FUZZ_DEBUG=line-tables-only
export CARGO_PROFILE_FUZZ_DEBUG_ASSERTIONS=true
export CARGO_PROFILE_FUZZ_OVERFLOW_CHECKS=true
export CARGO_PROFILE_FUZZ_INCREMENTAL=true
cargo build --locked --profile fuzz -p flyte-secret-fuzz --bin fuzz
args=(run --execs "$execs" --jobs "${FUZZ_JOBS:-2}")
if [[ -n ${FUZZ_SEED:-} ]]; then args+=(--seed "$FUZZ_SEED"); fi
exec target/fuzz/fuzz "${args[@]}" "$@"

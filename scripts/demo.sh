#!/usr/bin/env bash
# The main job, locally (README, first lines): on a fresh machine, installs what is missing,
# starts the real servers on 127.0.0.1, builds the static agent and the webhook, then runs
# the narrated demo: example secrets stored in every backend, a Flyte task pod admitted by
# the webhook over TLS, run like the kubelet would (agent in an empty-root init container),
# and the task reading its secrets with flytekit — values masked.
#
#   scripts/demo.sh
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

log "installing what is missing (scripts/deps.sh)"
bash scripts/deps.sh
log "starting the local servers (scripts/servers.sh start)"
bash scripts/servers.sh start
log "building the static agent ($MUSL_TARGET, release) and the webhook"
cargo build --quiet --release --locked --target "$MUSL_TARGET" -p flyte-secret-agent
cargo build --quiet --locked -p flyte-secret-webhook -p flyte-secret-e2e --bins
exec "$CARGO_TARGET/debug/demo"

# Vault / OpenBao policy of the role flyte-<namespace>: what the tasks of that ONE Flyte
# namespace (project <project>, domain <domain>) may read, and nothing else. Render it per namespace
# (README.md in this directory) and attach it to that namespace's role only.
# scripts/servers.sh installs this very file for its test namespaces, and
# agent/tests/integration/fetch/vault_roles.rs proves each role reads its own paths and gets
# 403 on another namespace's.
#
# Change the mount names (`secret`) to yours; `flyte` in the managed ids is the Flyte org.

# The namespace's own KV v2 secrets: request group `secret/<namespace>/<name>`.
path "secret/data/<namespace>/*" {
  capabilities = ["read"]
}

# Flyte 2 managed secrets of this project in this domain (the agent's first lookup), ...
path "secret/data/u__org__flyte__domain__<domain>__project__<project>__key__*" {
  capabilities = ["read"]
}

# ... then the domain-wide ones (shared by every project of the domain by Flyte's design;
# drop this block to refuse them) ...
path "secret/data/u__org__flyte__domain__<domain>__project____key__*" {
  capabilities = ["read"]
}

# ... then the org-wide ones (shared by every project; drop to refuse them).
path "secret/data/u__org__flyte__domain____project____key__*" {
  capabilities = ["read"]
}

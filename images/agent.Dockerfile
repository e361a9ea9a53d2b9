# syntax=docker/dockerfile:1.7
# The agent image: one static binary (musl, rustls + ring, no OpenSSL), a CA bundle for AWS and
# Vault over TLS, and the license, FROM scratch, running as 65532:65532. The webhook injects it
# as the init container `command: ["/agent"], args: ["init"]`.
#
#   docker build -f images/agent.Dockerfile -t ghcr.io/flyte-secret-agent/agent:0.1.0 .
#   docker buildx build -f images/agent.Dockerfile --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 -t ghcr.io/flyte-secret-agent/agent:0.1.0 --push .
#
# The build is images/build-static.sh --build-only --only agent: the same cargo command,
# profile and flags as the Docker-less build and proof, which CI runs. arm64: the builder runs
# on the target platform (natively or under QEMU with buildx) and builds
# aarch64-unknown-linux-musl with Debian's arm64 musl-tools; no cross C toolchain is needed.
# The context is the repository root (agent.Dockerfile.dockerignore keeps target/ out).
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools lld file ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    bash images/build-static.sh --build-only --only agent --out /out

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flyte-secret-agent" \
      org.opencontainers.image.description="Init-container agent that fetches Flyte task secrets from Kubernetes, AWS Secrets Manager and Vault into strict files." \
      org.opencontainers.image.source="https://github.com/flyte-secret-agent/flyte-secret-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/LICENSE /LICENSE
COPY --from=build /out/agent /agent
USER 65532:65532
ENTRYPOINT ["/agent"]
CMD ["init"]

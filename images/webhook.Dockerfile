# syntax=docker/dockerfile:1.7
# The webhook image: one static binary (musl, rustls + ring, no OpenSSL), a CA bundle and the
# license, FROM scratch, running as 65532:65532. deploy/base runs it as `webhook init-certs`
# (init container and renewal CronJob) and `webhook serve`.
#
#   docker build -f images/webhook.Dockerfile -t ghcr.io/flyte-secret-agent/webhook:0.1.0 .
#   docker buildx build -f images/webhook.Dockerfile --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 -t ghcr.io/flyte-secret-agent/webhook:0.1.0 --push .
#
# The build is images/build-static.sh --build-only --only webhook (see agent.Dockerfile),
# profile-guided: it trains an instrumented build on images/pgo/ over loopback inside this
# stage (curl, openssl, rustup's llvm-tools), then builds the binary the image ships.
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools lld file ca-certificates curl openssl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# PGO=0 builds without the profile (e.g. a quick arm64 build under QEMU, where the training
# runs emulated too).
ARG PGO=1
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    bash images/build-static.sh --build-only --only webhook --out /out \
      $([ "$PGO" = 0 ] && echo --no-pgo)

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flyte-secret-webhook" \
      org.opencontainers.image.description="Mutating admission webhook that wires the flyte-secret agent into Flyte task pods." \
      org.opencontainers.image.source="https://github.com/flyte-secret-agent/flyte-secret-agent" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/LICENSE /LICENSE
COPY --from=build /out/webhook /webhook
USER 65532:65532
EXPOSE 9443 8080
ENTRYPOINT ["/webhook"]
CMD ["serve"]

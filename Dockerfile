# syntax=docker/dockerfile:1.7
# outrigger: one image that serves (`outrigger serve`) and can run as the
# traffic-capture init container (`outrigger iptables`), so it carries iptables.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when the
# manifest or the lock file changes, not on every source edit. The stub
# sources only satisfy cargo's target discovery.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | tail -n +2); do touch "benches/$b.rs"; done \
    && cargo fetch --locked
COPY . .
RUN --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin outrigger \
    && install -m 0755 target/release/outrigger /usr/local/bin/outrigger

FROM debian:bookworm-slim AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="outrigger" \
      org.opencontainers.image.description="Istio-compatible sidecar injector and workload certificate authority" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/outrigger"
# iptables for the init-container role; procps for the optional
# `enable-core-dump` init container (its `sysctl`), which runs from this
# image when `config.trafficCapture: outrigger` makes it the init image;
# ca-certificates for API server TLS.
# Versions are not pinned: Debian replaces pinned versions on security
# updates, which would break rebuilds of this image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables procps ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /usr/local/bin/outrigger /usr/local/bin/outrigger
# Non-root by default (the distroless "nonroot" UID); the init container
# overrides runAsUser to 0 because iptables needs NET_ADMIN as root.
USER 65532:65532
EXPOSE 15017 15012 15014
ENTRYPOINT ["/usr/local/bin/outrigger"]
CMD ["serve"]

# agent-gateway in a container: built with the Rust image, run on Debian slim as a non-root
# user. The data dir is a volume; the gateway binds every address inside the container.
#
#   docker build -t agent-gateway .
#   docker run -p 8787:8787 -v gateway-data:/data -e GATEWAY_AUTH_TOKEN=... agent-gateway

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# gcc and make for the C parts (bundled SQLite, aws-lc); cmake for aws-lc-sys.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake make g++ \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin agent-gateway \
    && cp target/release/agent-gateway /agent-gateway

FROM debian:bookworm-slim
# ca-certificates for the model providers' TLS; bubblewrap so `bash` (when enabled) runs in its
# own namespaces where the container allows them (landlock otherwise).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin gateway \
    && mkdir -p /data /workspace \
    && chown gateway:gateway /data /workspace
COPY --from=build /agent-gateway /usr/local/bin/agent-gateway
USER 10001:10001
WORKDIR /workspace
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8787 \
    GATEWAY_DATA_DIR=/data \
    CWD=/workspace
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["agent-gateway", "healthcheck"]
ENTRYPOINT ["agent-gateway"]

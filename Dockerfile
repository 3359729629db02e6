# syntax=docker/dockerfile:1
# Two stages: the toolchain and sources stay in the builder, the runtime
# image holds one binary, CA certificates (model downloads) and curl (the
# healthcheck).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p quarry \
 && cp target/release/quarry /usr/local/bin/quarry

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home quarry
COPY --from=build /usr/local/bin/quarry /usr/local/bin/quarry
USER quarry
WORKDIR /data
# Index data (edge store, journals) and the model cache live on the volume.
ENV QUARRY_DATA_DIR=/data/index \
    QUARRY_HOME=/data/home \
    QUARRY_ADDR=0.0.0.0:7700
VOLUME ["/data"]
EXPOSE 7700
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD curl -fsS http://127.0.0.1:7700/readyz || exit 1
ENTRYPOINT ["quarry"]
CMD ["serve"]

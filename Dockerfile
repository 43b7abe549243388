# The switchyard image: the binary on a slim Debian, running as uid 10001. Build from the
# repository root (the context; .dockerignore keeps target/ and build outputs out):
#   docker build -t switchyard .
# .git is not in the context: pass the commit for `switchyard --version` and the
# switchyard_build_info metric with
#   docker build --build-arg SWITCHYARD_COMMIT=$(git rev-parse --short=12 HEAD) -t switchyard .
# Run the embedded default (fs-backed buckets under /data, development credentials unless
# SWITCHYARD_ACCESS_KEY and SWITCHYARD_SECRET_KEY are set):
#   docker run -p 9000:9000 -v switchyard-data:/data switchyard
# or a configuration of your own:
#   docker run -p 9000:9000 -v $PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro \
#     switchyard serve --config /etc/switchyard/switchyard.toml

FROM rust:1.95-bookworm AS build
ARG SWITCHYARD_COMMIT=""
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
    && install -D -m 0755 target/release/switchyard /out/switchyard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home switchyard \
    && install -d -o 10001 -g 10001 /data
COPY --from=build /out/switchyard /usr/local/bin/switchyard
USER 10001:10001
WORKDIR /data
EXPOSE 9000
ENTRYPOINT ["switchyard"]
# The embedded default listens on 127.0.0.1 unless told otherwise: in a container, that
# is unreachable from outside it.
CMD ["serve", "--listen", "0.0.0.0:9000", "--data-dir", "/data"]

# udsping in a container, for CI systems without a Rust toolchain:
#
#   docker build -t udsping .
#   docker run --rm -v "$PWD:/work" udsping conform server -- ./my-server {socket}
#
# The binary is linked statically (musl), so it can also be copied into an image that has the
# implementation's own runtime:  COPY --from=udsping /usr/local/bin/udsping /usr/local/bin/
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin udsping \
    && strip target/release/udsping \
    && ./target/release/udsping --version

# python3 is there for the many implementations (and the original demo) written in it.
FROM alpine:3
RUN apk add --no-cache python3
COPY --from=build /src/target/release/udsping /usr/local/bin/udsping
WORKDIR /work
ENTRYPOINT ["udsping"]
CMD ["--help"]

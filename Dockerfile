# syntax=docker/dockerfile:1
# udsping in a container, for CI systems without a Rust toolchain. Two images:
#
# The default one holds the static binary alone, at /udsping, on distroless's static base (no
# shell, no libc: the binary needs none). Copy it into the image that has your server's own
# runtime, whatever its libc:
#
#   docker build -t udsping https://github.com/udsping/udsping.git#v0.1.0
#
#   # your Dockerfile
#   FROM node:22-bookworm
#   COPY --from=udsping /udsping /usr/local/bin/udsping
#   COPY . /app
#
#   docker build -t my-server . && docker run --rm my-server \
#     udsping conform server -- node /app/server.js {socket}
#
# The target `python` is python3 with udsping on PATH, for an implementation that needs only
# python3 (the original demo's server does):
#
#   docker build --target python -t udsping:python https://github.com/udsping/udsping.git#v0.1.0
#   docker run --rm -v "$PWD:/work" udsping:python conform server -- python3 /work/server.py {socket}
#
# Both hold the binary of the release archive (scripts/dist): glibc linked statically.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/dist --out /dist \
    && mkdir /out \
    && tar -xzf /dist/udsping-*.tar.gz -C /out --strip-components=1 \
    && /out/udsping --version

# python3 is there for the many implementations (and the original demo) written in it.
FROM python:3-slim-bookworm AS python
COPY --from=build /out/udsping /usr/local/bin/udsping
COPY --from=build /out/LICENSE-MIT /out/LICENSE-APACHE /usr/share/doc/udsping/
WORKDIR /work
ENTRYPOINT ["udsping"]
CMD ["--help"]

# The default target, last: the binary alone. distroless/static adds /tmp (where the gate makes
# a directory per case), /etc/passwd and CA certificates to an empty image.
FROM gcr.io/distroless/static-debian12 AS static
COPY --from=build /out/udsping /udsping
COPY --from=build /out/LICENSE-MIT /out/LICENSE-APACHE /usr/share/doc/udsping/
WORKDIR /work
ENTRYPOINT ["/udsping"]
CMD ["--help"]

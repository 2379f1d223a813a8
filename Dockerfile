# syntax=docker/dockerfile:1
# jettrain image: static coordinator and worker binaries on Debian slim with
# the Fashion-MNIST dataset installed at /usr/share/datasets/fashion-mnist.
#
#   docker build -t jettrain .
#   docker run --rm jettrain coordinator --help

ARG GO_VERSION=1.26
ARG DEBIAN_VERSION=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w" -o /out/coordinator ./cmd/coordinator && \
    go build -trimpath -ldflags "-s -w" -o /out/worker ./cmd/worker

FROM debian:${DEBIAN_VERSION}-slim AS runtime
# wget serves the compose healthchecks; the dataset package ships the IDX files.
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates wget dataset-fashion-mnist && \
    rm -rf /var/lib/apt/lists/* && \
    useradd --system --uid 10001 --home-dir /var/lib/jettrain --create-home jettrain
COPY --from=build /out/coordinator /out/worker /usr/local/bin/
USER jettrain
WORKDIR /var/lib/jettrain
# 9464: Prometheus /metrics and /healthz when JETTRAIN_METRICS_ADDR=:9464.
EXPOSE 9464
CMD ["worker"]

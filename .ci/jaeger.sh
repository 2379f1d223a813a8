#!/bin/sh
# Builds the Jaeger all-in-one binary (v2, OpenTelemetry-collector based)
# used by the telemetry end-to-end test into a cache directory and prints the
# binary's path. Idempotent: an existing binary of the pinned version is
# reused.
#
#   export JETTRAIN_JAEGER="$(.ci/jaeger.sh .cache/ci)"
#
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@VERSION` refuses the
# module because its go.mod has a replace directive, so the module directory
# is copied out of the module cache and built in place (about 4 minutes and
# 2 GB of memory on two cores; the binary is about 120 MB).
set -eu
VERSION=v1.76.0
cache=${1:?usage: jaeger.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
bin=$cache/jaeger
stamp=$cache/jaeger.version
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSION" ]; then
	echo "$bin"
	exit 0
fi
echo "building jaeger $VERSION into $bin (about 4 minutes)" >&2
work=$(mktemp -d "$cache/jaeger-src.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# Resolve outside any module so the project's go.mod is not consulted.
moddir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/jaegertracing/jaeger@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[ -d "$moddir" ] || { echo "jaeger.sh: module directory for $VERSION not found" >&2; exit 1; }
cp -R "$moddir" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" ./cmd/jaeger) >&2
mv "$bin.tmp" "$bin"
echo "$VERSION" >"$stamp"
echo "$bin"

#!/bin/sh
# Installs the NATS server used by the chaos tests into a cache directory and
# prints the binary's path. Idempotent: an existing binary is reused.
#
#   export JETTRAIN_NATS_SERVER="$(.ci/nats-server.sh .cache/ci)"
set -eu
VERSION=v2.15.3
cache=${1:?usage: nats-server.sh CACHE_DIR}
mkdir -p "$cache"
dir=$(cd "$cache" && pwd)
bin=$dir/nats-server
if [ ! -x "$bin" ]; then
	echo "installing nats-server $VERSION into $dir (about a minute)" >&2
	GOBIN="$dir" go install "github.com/nats-io/nats-server/v2@$VERSION" >&2
fi
echo "$bin"

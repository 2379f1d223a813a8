#!/bin/sh
# Installs the versitygw S3 server used by the objstore tests into a cache
# directory and prints the binary's path. Idempotent: an existing binary of
# the pinned version is reused.
#
#   export JETTRAIN_VERSITYGW="$(.ci/versitygw.sh .cache/ci)"
set -eu
VERSION=v1.8.0
cache=${1:?usage: versitygw.sh CACHE_DIR}
mkdir -p "$cache"
dir=$(cd "$cache" && pwd)/versitygw-$VERSION
bin=$dir/versitygw
if [ ! -x "$bin" ]; then
	echo "installing versitygw $VERSION into $dir (about a minute)" >&2
	GOBIN="$dir" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
fi
echo "$bin"

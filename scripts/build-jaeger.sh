#!/usr/bin/env bash
# Builds Jaeger (the v2 binary, cmd/jaeger) from the Go module proxy through the
# tools module in tools/jaeger, once: the binary is cached outside the clone, at
# $AUTOGLM_JAEGER or ${XDG_CACHE_HOME:-~/.cache}/autoglm/jaeger-<version>/jaeger,
# where test/tracing/jaeger.test.ts looks for it. Prints the binary's path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../tools/jaeger"
version=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' go.mod)
out=${AUTOGLM_JAEGER:-${XDG_CACHE_HOME:-$HOME/.cache}/autoglm/jaeger-$version/jaeger}
if [[ ! -x $out ]]; then
  mkdir -p "$(dirname "$out")"
  echo "building Jaeger $version (minutes, once) into $out" >&2
  go build -trimpath -ldflags='-s -w' -o "$out.partial" github.com/jaegertracing/jaeger/cmd/jaeger
  mv "$out.partial" "$out"
fi
echo "$out"

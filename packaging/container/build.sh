#!/bin/sh
# build.sh [TAG]: builds the container image of Portico (default tag
# portico:<version>) with podman and prints the tag. Run from the repository
# root (make container does). The binary is built here, static, for the host's
# architecture; the image is FROM scratch, so no registry is contacted.
set -eu
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
tag=${1:-portico:$VERSION}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X github.com/portico-edge/portico/internal/app.Version=$VERSION -X github.com/portico-edge/portico/internal/app.Commit=$(git rev-parse HEAD 2>/dev/null)" \
	-o "$ctx/portico" ./cmd/portico
cp packaging/container/Containerfile "$ctx/Containerfile"
cp packaging/portico.yaml "$ctx/portico.yaml"
printf 'root:x:0:0:root:/:/sbin/nologin\nportico:x:10001:10001:Portico:/data:/sbin/nologin\n' >"$ctx/passwd"
printf 'root:x:0:\nportico:x:10001:\n' >"$ctx/group"
mkdir -m 0700 "$ctx/data"
chmod 0644 "$ctx/passwd" "$ctx/group" "$ctx/portico.yaml"
podman build --quiet --pull=never -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null
echo "$tag"

#!/bin/sh
# build.sh OUTDIR: builds the Debian package of Portico with dpkg-deb and prints
# its path. Run from the repository root (make deb does).
#   VERSION      program version stamped into the binary (default: git describe)
#   DEB_VERSION  package version (default: VERSION when it starts with a digit,
#                else 0~git<commit date>.<commit>)
#   DEB_ARCH     Debian architecture (default: dpkg --print-architecture); the Go
#                target follows it.
set -eu
out=${1:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [ -z "${DEB_VERSION:-}" ]; then
	case "${VERSION#v}" in
	[0-9]*.[0-9]*) DEB_VERSION=${VERSION#v} ;;
	*) DEB_VERSION="0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo dev)" ;;
	esac
fi
DEB_ARCH=${DEB_ARCH:-$(dpkg --print-architecture)}
case "$DEB_ARCH" in
amd64 | arm64 | riscv64 | ppc64le | s390x) goarch=$DEB_ARCH ;;
i386) goarch=386 ;;
armhf) goarch=arm ;;
*) echo "build.sh: no Go target for Debian architecture $DEB_ARCH" >&2; exit 1 ;;
esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
	"$root/etc/portico" "$root/usr/share/man/man8" "$root/usr/share/doc/portico"

# Static binary: the SQLite store is pure Go, so cgo is not needed.
CGO_ENABLED=0 GOOS=linux GOARCH=$goarch ${GOARM:+GOARM=7} go build -trimpath \
	-ldflags "-s -w -X github.com/portico-edge/portico/internal/app.Version=$VERSION -X github.com/portico-edge/portico/internal/app.Commit=$(git rev-parse HEAD 2>/dev/null)" \
	-o "$root/usr/bin/portico" ./cmd/portico
chmod 0755 "$root/usr/bin/portico"

install -m 0644 packaging/portico.service "$root/usr/lib/systemd/system/portico.service"
install -m 0644 packaging/portico.yaml "$root/etc/portico/portico.yaml"
gzip -9n <packaging/portico.8 >"$root/usr/share/man/man8/portico.8.gz"
chmod 0644 "$root/usr/share/man/man8/portico.8.gz"
# net-snmp finds it in its default MIB path: snmpwalk -m +PORTICO-MIB.
install -D -m 0644 mibs/PORTICO-MIB.txt "$root/usr/share/snmp/mibs/PORTICO-MIB.txt"
for doc in install config operations security; do
	install -m 0644 "docs/$doc.md" "$root/usr/share/doc/portico/$doc.md"
done
cat >"$root/usr/share/doc/portico/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: portico
Upstream-Contact: Portico developers <portico@portico-edge.org>
Source: https://github.com/portico-edge/portico
Copyright: $(git log -1 --format=%cd --date=format:%Y 2>/dev/null || date +%Y) Portico developers
COPYRIGHT
chmod 0644 "$root/usr/share/doc/portico/copyright"
# A native package's changelog (Debian policy 12.7): one entry for this build,
# dated by the commit so that rebuilding the same commit gives the same file.
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
cat <<CHANGELOG | gzip -9n >"$root/usr/share/doc/portico/changelog.gz"
portico ($DEB_VERSION) unstable; urgency=medium

  * Portico $VERSION (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)).

 -- Portico developers <portico@portico-edge.org>  $when
CHANGELOG
chmod 0644 "$root/usr/share/doc/portico/changelog.gz"
# lintian overrides, each with its reason.
install -d -m 0755 "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/portico" <<OVERRIDES
# Go program built with CGO_ENABLED=0 on purpose: one self-contained binary
# (the SQLite store is pure Go), the same on every Debian release.
portico: statically-linked-binary [usr/bin/portico]
OVERRIDES
chmod 0644 "$root/usr/share/lintian/overrides/portico"

for s in postinst prerm postrm; do
	install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"
done
echo /etc/portico/portico.yaml >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: portico
Version: $DEB_VERSION
Architecture: $DEB_ARCH
Maintainer: Portico developers <portico@portico-edge.org>
Installed-Size: $size
Depends: passwd
Section: net
Priority: optional
Homepage: https://github.com/portico-edge/portico
Description: session border controller for video conferencing
 Portico relays SIP, H.323, WebRTC (TURN) and TLS traffic between the
 Internet, an enterprise network and its call servers, with a web console
 and REST API. It runs as the unprivileged portico user under systemd.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/portico_${DEB_VERSION}_${DEB_ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"

#!/usr/bin/env bash
# Builds the .deb from a built binary:
#   packaging/deb/build.sh VERSION BINARY OUTPUT.deb
# The package's architecture is the binary's (amd64 or arm64), read from its
# ELF header, so that a package can never claim another.
set -euo pipefail
version=$1 binary=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
# e_machine, bytes 18-19 of the ELF header (little endian): 0x3e x86-64, 0xb7 AArch64.
case $(od -An -tx1 -j18 -N2 "$binary" | tr -d ' \n') in
3e00) arch=amd64 ;;
b700) arch=arm64 ;;
*) echo "build.sh: $binary is neither an amd64 nor an arm64 ELF binary" >&2; exit 1 ;;
esac
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The unit must load without a complaint: verify a copy that points at the
# binary just built (the installed one is verified in the systemd proof).
unit=$(mktemp -d)/anycast-watchdog.service
sed "s|/usr/sbin/anycast-watchdog|$(realpath "$binary")|g" "$here/anycast-watchdog.service" > "$unit"
if ! errors=$(systemd-analyze verify --man=no "$unit" 2>&1) || [ -n "$errors" ]; then
	echo "systemd-analyze verify: $errors" >&2
	exit 1
fi
rm -rf "$(dirname "$unit")"

install -D -m 0755 "$binary" "$stage/usr/sbin/anycast-watchdog"
install -D -m 0644 "$here/config.yaml" "$stage/etc/anycast-watchdog/config.yaml"
install -D -m 0644 "$here/anycast-watchdog.service" "$stage/usr/lib/systemd/system/anycast-watchdog.service"
install -d "$stage/usr/share/man/man8" "$stage/usr/share/man/man5" "$stage/usr/share/doc/anycast-watchdog"
gzip -9n < "$here/anycast-watchdog.8" > "$stage/usr/share/man/man8/anycast-watchdog.8.gz"
gzip -9n < "$here/anycast-watchdog.yaml.5" > "$stage/usr/share/man/man5/anycast-watchdog.yaml.5.gz"
install -m 0644 "$here/copyright" "$stage/usr/share/doc/anycast-watchdog/copyright"
install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/anycast-watchdog"
install -D -m 0644 "$here/../prometheus/anycast-watchdog.rules.yml" "$stage/usr/share/anycast-watchdog/prometheus/anycast-watchdog.rules.yml"

# The changelog's newest entry must name the version built; a development
# build of another version gets an entry of its own.
{
	if ! head -1 "$here/changelog" | grep -q "($version)"; then
		printf 'anycast-watchdog (%s) unstable; urgency=medium\n\n  * Development build.\n\n -- anycast-watchdog developers <dev@anycast-watchdog.invalid>  %s\n\n' \
			"$version" "$(date -R -u)"
	fi
	cat "$here/changelog"
} | gzip -9n > "$stage/usr/share/doc/anycast-watchdog/changelog.Debian.gz"
chmod 0644 "$stage/usr/share/man/man8/"* "$stage/usr/share/man/man5/"* "$stage/usr/share/doc/anycast-watchdog/changelog.Debian.gz"

install -d "$stage/DEBIAN"
for script in postinst prerm postrm; do
	install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
install -m 0644 "$here/conffiles" "$stage/DEBIAN/conffiles"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" -e "s/@ARCH@/$arch/" "$here/control.in" > "$stage/DEBIAN/control"
find "$stage" -type d -exec chmod 0755 {} +

mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"

#!/usr/bin/env bash
# Makes the build context of the Containerfile from a built statusd binary: a root
# file system with the binary, the shared libraries it links (found with ldd: libc,
# libm, libgcc_s and the loader), the CA certificates, /etc/passwd and /etc/group with
# the statusd user (uid 10001) and an empty data directory. No base image is needed.
#   scripts/container-context.sh BINARY DIR
set -euo pipefail

bin=${1:?usage: $0 BINARY DIR}
dir=${2:?usage: $0 BINARY DIR}
[[ -x "$bin" ]] || { echo "$0: $bin is not an executable" >&2; exit 1; }

rm -rf "$dir"
rootfs="$dir/rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp" "$dir/data/statusd"
chmod 1777 "$rootfs/tmp"
# The data directory itself is an entry of data/, so the image keeps its mode 0700.
chmod 0700 "$dir/data/statusd"
# Stripped: a debug build is hundreds of MB with its debug info.
objcopy --strip-debug "$bin" "$rootfs/usr/bin/statusd"
chmod 0755 "$rootfs/usr/bin/statusd"

# Every library the binary loads, at the path the loader looks for it.
ldd "$bin" | awk '/=> \// { print $3 } /^\s*\/.*ld-linux/ { print $1 }' | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
# The loader is also reached through /lib64 on x86-64.
if [[ -e /lib64/ld-linux-x86-64.so.2 && ! -e "$rootfs/lib64/ld-linux-x86-64.so.2" ]]; then
    mkdir -p "$rootfs/lib64"
    cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
fi
# TLS to PostgreSQL or NATS may need the system's CA certificates.
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "$rootfs/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi
printf 'root:x:0:0:root:/:/sbin/nologin\nstatusd:x:10001:10001:statusd:/var/lib/statusd:/sbin/nologin\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nstatusd:x:10001:\n' >"$rootfs/etc/group"
echo "$dir: $(du -sh "$rootfs" | cut -f1) root file system"

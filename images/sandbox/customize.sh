#!/bin/sh
# mmdebstrap customize hook: $1 is the root filesystem being built. The build
# passes the wheels unpacked by pip in SANDBOX_WHEELS and their destination in
# SANDBOX_SITE_PACKAGES.
set -eu

root="$1"
mkdir -p "$root$SANDBOX_SITE_PACKAGES"
cp -a "$SANDBOX_WHEELS"/. "$root$SANDBOX_SITE_PACKAGES"/

# Byte-compile with the image's own interpreter, then prove that the
# supervisor's imports load before the image is ever tagged.
chroot "$root" /usr/bin/python3 -m compileall -q "$SANDBOX_SITE_PACKAGES"
chroot "$root" /usr/bin/python3 -c "import grpc, openshell._proto.openshell_pb2"

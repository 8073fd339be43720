#!/bin/sh
# Install the Debian packages focusd needs to build, run and test, if any
# is missing. Safe to run again: it does nothing when all are present.
set -eu

PKGS="gcc pkg-config meson ninja-build python3
libsofia-sip-ua-dev libdpdk-dev libopus-dev libspandsp-dev libjemalloc-dev
libjansson-dev libspeexdsp-dev libxml2-dev libxml2-utils libcmocka-dev
sip-tester clang-format gnuplot-nox"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "focusd: installing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "focusd: need root (or sudo) to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

#!/bin/sh
# Install what is missing, build focusd twice (a normal build and one with
# AddressSanitizer + UBSan), and run every test in both: unit, style and
# integration suites. Ends with "N passed, N failed"; exits non-zero on any
# failure.
set -eu
cd "$(dirname "$0")/.."
tools/deps.sh

setup() { # dir, meson options...
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir"
}

setup build
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbench=false

status=0
# A log name of our own, so another meson test run cannot overwrite it.
meson test -C build --print-errorlogs --num-processes 2 \
	--logbase testsh || status=1
ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:halt_on_error=1" \
LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	meson test -C build-asan --print-errorlogs --num-processes 2 \
	--no-suite style --logbase testsh || status=1

python3 tools/test_summary.py build/meson-logs/testsh.json \
	build-asan/meson-logs/testsh.json || status=1
exit $status

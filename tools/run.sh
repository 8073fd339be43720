#!/bin/sh
# Build focusd and start it with working defaults: SIP on 127.0.0.1:5060,
# the socket dataplane, the factory URI and auto-create on, and the
# management socket. Extra arguments go to focusd (e.g. --workers 2).
set -eu
cd "$(dirname "$0")/.."
tools/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

MGMT="${XDG_RUNTIME_DIR:-/tmp}/focusd.sock"
cat <<INFO
focusd is starting. To join a conference, dial from any SIP phone (G.711, G.722 or Opus):
    sip:room1@127.0.0.1        joins (and creates) conference "room1"
    sip:conf@127.0.0.1         the factory: creates a new conference
    sip:join@127.0.0.1         the conference application: key a number, then #
or with SIPp, from another terminal (plays nothing, holds the call 30 s):
    sipp -sf tests/sipp/uac_join.xml -s room1 127.0.0.1:5060 -m 1 \\
         -i 127.0.0.1 -p 5070 -key rtp_port 40000 -key pause_ms 30000 \\
         -key port_file /dev/null
Watch it with:
    build/mgmt/focusctl list
    build/mgmt/focusctl show room1
Stop with Ctrl-C.
INFO
exec build/daemon/focusd --sip-listen 127.0.0.1:5060 --auto-create \
	--mgmt "$MGMT" "$@"

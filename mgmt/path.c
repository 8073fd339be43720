/*
 * path.c - where the management socket lives unless told otherwise.
 *
 * $XDG_RUNTIME_DIR/focusd.sock when the session has a runtime directory
 * (private to its user, on tmpfs, emptied at logout: the right home for a
 * socket), /tmp/focusd.sock otherwise. A relative XDG_RUNTIME_DIR is
 * ignored, as the XDG base directory specification asks.
 *
 * This is its own file because focusctl compiles it too: the client must
 * not link the server, which drags in signaling, Sofia-SIP and DPDK.
 *
 * Threads: any; it reads the environment, so not while another thread
 * changes it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mgmt/mgmt.h"

#define SOCK_NAME "focusd.sock"

void
mgmt_default_path(char *buf, size_t len)
{
	const char *dir = getenv("XDG_RUNTIME_DIR");
	int n;

	if (buf == NULL || len == 0)
		return;
	if (dir != NULL && dir[0] == '/') {
		n = snprintf(buf, len, "%s/%s", dir, SOCK_NAME);
		if (n > 0 && (size_t)n < len)
			return;
	}
	snprintf(buf, len, "/tmp/%s", SOCK_NAME);
}

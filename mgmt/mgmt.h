/*
 * mgmt.h - the management socket: JSON-RPC 2.0 on a Unix stream socket.
 *
 * NOC tools and focusctl connect to a Unix stream socket and speak
 * JSON-RPC 2.0 over it, one compact JSON object a line in each direction.
 * The server is served from signaling's event loop (sig_fd_watch), so a
 * request reads conference state between two SIP events and never races
 * them. Methods: conference.list, conference.show, stats; server.c
 * describes the shape of each result and the error codes below.
 *
 * Threads: mgmt_alloc and mgmt_free run on the control thread, the one that
 * runs sig_run(); call mgmt_free before sig_free (the server borrows the
 * struct sig). mgmt_default_path runs on any thread (it reads the
 * environment).
 */
#ifndef FOCUSD_MGMT_H
#define FOCUSD_MGMT_H

#include <stddef.h>

/* A request line longer than this (without its newline) is refused. */
#define MGMT_LINE_MAX 65536
/* Clients served at once; one more is answered MGMT_RPC_BUSY and closed. */
#define MGMT_CLIENTS_MAX 64

/* Error codes in replies (JSON-RPC 2.0 section 5.1, then our own). */
enum mgmt_rpc_err {
	MGMT_RPC_PARSE = -32700,	   /* not JSON; "id" is null */
	MGMT_RPC_INVALID_REQUEST = -32600, /* not a request, or a batch */
	MGMT_RPC_NO_METHOD = -32601,	   /* data: {"method": NAME} */
	MGMT_RPC_INVALID_PARAMS = -32602,
	MGMT_RPC_INTERNAL = -32603,	  /* data: {"error": strerror} */
	MGMT_RPC_NO_CONF = -32001,	  /* data: {"id": ID} */
	MGMT_RPC_BUSY = -32002,		  /* too many clients */
	MGMT_RPC_NO_PARTICIPANT = -32003, /* data: {"id", "participant"} */
	MGMT_RPC_BUSY_STATE = -32004,	  /* the call is being set up */
};

struct mgmt;
struct sig;

/*
 * Listen on the Unix socket `path` and serve it from s's event loop.
 * A socket file left behind by a server that died is removed first; a
 * live server answering on `path`, or a file there that is not a socket,
 * makes it fail with EADDRINUSE. Returns 0 or an errno.
 */
int mgmt_alloc(struct mgmt **mp, struct sig *s, const char *path);
/* Drop every client, stop watching, remove the socket file. */
void mgmt_free(struct mgmt *m);

/*
 * The socket both focusd and focusctl use unless told otherwise:
 * $XDG_RUNTIME_DIR/focusd.sock when that variable holds an absolute path,
 * /tmp/focusd.sock otherwise (also when the former does not fit in len).
 */
void mgmt_default_path(char *buf, size_t len);

#endif

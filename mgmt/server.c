/*
 * server.c - the JSON-RPC 2.0 management server.
 *
 * Wire: a Unix stream socket; one JSON-RPC 2.0 message a line in each
 * direction, UTF-8, newline-terminated. Replies are dumped compact
 * (JSON_COMPACT), so a reply never spans lines; a trailing "\r" and blank
 * lines in requests are tolerated. A request line longer than
 * MGMT_LINE_MAX bytes gets a -32600 reply and the connection is closed.
 * At most MGMT_CLIENTS_MAX clients at once; the next one gets a -32002
 * "too many clients" reply and is closed.
 *
 * JSON-RPC 2.0 as specified, except batches: a JSON array gets a single
 * -32600 "batch requests are not supported" reply (id null). Notifications
 * (requests without an "id" member) run and get no reply, errors included;
 * replies to invalid requests echo the id when it was one, null otherwise.
 * "params" may be omitted or null where a method takes none.
 *
 * Methods and their results:
 *   conference.list  {} ->
 *     {"conferences":[{"id","uri","participants","worker","created"}]}
 *   conference.show  {"id":ID} or [ID] ->
 *     {"id","uri","worker","created","participants":[{"uri","call_id",
 *      "leg_uri","mute","deaf","gain_db","codec","ptime_ms","state",
 *      "direction",
 *      "joining","local_rtp","remote_rtp",
 *      "rtp":{"rx_packets","rx_bytes","rx_foreign","rx_malformed",
 *             "rx_other_pt","rx_late","rx_overflow","rx_lost",
 *             "rx_concealed","rx_silent","jitter_ms","jb_target",
 *             "rx_unmixed",
 *             "underruns","tx_packets","tx_bytes","tx_dropped","rx_dtmf",
 *             "rtcp":{"rx_sr","rx_rr","rx_malformed","tx","rtt_ms",
 *                     "peer":{"lost","fraction_lost","jitter_ms"} or null},
 *             "latched"} or null}]}
 *     "rtp" is null when the worker gave no counters (it did not answer
 *     within a second, or the leg is not on a worker yet); an address not
 *     known yet, or any string signaling left NULL, is null. ID unknown:
 *     error -32001 "no such conference", data {"id":ID}.
 *   stats  {} -> {"conferences","legs","invites","rejected",
 *                 "io":{rx_packets, rx_no_flow, rx_malformed, ...},
 *                 "workers":[{worker, ticks, overruns, tick_us_max, ...}]}
 *                 (asynchronous: the io lcore and every worker answer)
 *   participant.audio  {"id":ID,"participant":WHO[,"mute":BOOL]
 *                       [,"deaf":BOOL][,"gain_db":-24..24]} ->
 *     {"id","participant","mute","deaf","gain_db"}
 * "created" is seconds since the epoch.
 *
 * Order: a client's requests are answered one at a time, in order. While
 * a request waits for a worker (conference.show) or a reply is not
 * completely written, the client's further lines wait in its input buffer
 * and the server stops reading from it, so the kernel's socket buffer
 * pushes back on a client that writes faster than it reads. A client thus
 * holds at most one pending request, one buffer of input (MGMT_LINE_MAX)
 * and one reply of output. Rejected: answering out of order (allowed by
 * JSON-RPC, but every client would have to match ids, and pending requests
 * and queued output would need their own bounds).
 *
 * Event loop: signaling's loop only watches descriptors for input, but a
 * reply bigger than the socket buffer (conference.show of a large
 * conference) must wait until the socket is writable. So the server keeps
 * its own epoll set - the listening socket, and every client with EPOLLOUT
 * only while it has output queued - and registers that one epoll
 * descriptor with sig_fd_watch: it reads as ready whenever a member has an
 * event. Level-triggered throughout. Rejected: one sig_fd_watch per
 * client (a partial reply would stall until the client wrote again),
 * blocking writes (one stuck client would freeze SIP), dropping a client
 * whose reply did not fit at once (large conferences are the case that
 * matters).
 *
 * Asynchronous requests: sig_conf_show answers later, from its callback.
 * The request is a struct mgmt_call that points to its client; a client
 * that goes away first clears that pointer, and the callback then only
 * frees the call. A peer that closes its socket (EPOLLHUP) is dropped at
 * once; a peer that only shut down its sending side still gets the
 * replies to the lines it sent, which is what `socat` and `nc -U` expect.
 *
 * Start-up: a socket file left by a focusd that died is removed, but only
 * when it is a socket and a connect to it is refused; a live server there,
 * or any other kind of file, is EADDRINUSE. The file is made 0660 (owner
 * and group may manage focusd, whatever the umask) between bind and
 * listen, and mgmt_free removes it only while it is still the one we
 * bound. Running out of descriptors in accept would spin the level-
 * triggered loop; a spare descriptor is closed to accept and close the
 * connection instead (the libev documentation's remedy).
 *
 * Threads: the control thread only. Costs: per request, one parse and one
 * dump of a document the size of its reply, and a few syscalls; nothing
 * here is on the fast path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "mgmt/mgmt.h"
#include "signaling/signaling.h"

#define LOG	     "mgmt"
#define IN_CAP	     (MGMT_LINE_MAX + 1) /* the longest line and its \n */
#define OUT_MAX	     (64u << 20)	 /* sanity bound on one queued reply */
#define BACKLOG	     16
#define ACCEPT_BURST 16
#define EVENTS_MAX   (MGMT_CLIENTS_MAX + 1)
#define SOCK_MODE    0660

struct mgmt_call;

struct mgmt_client {
	TAILQ_ENTRY(mgmt_client) link;
	struct mgmt *m; /* borrowed */
	int fd;
	int pid; /* the peer's, for log lines; 0 if unknown */
	unsigned uid;
	uint32_t events; /* what the epoll set watches now */

	size_t in_off; /* first byte not yet handled */
	size_t in_len;
	char *out;
	size_t out_off; /* first byte not yet sent */
	size_t out_len;
	size_t out_cap;

	struct mgmt_call *pending; /* the request waiting for signaling */
	bool eof;		   /* the peer shut down its sending side */
	bool closing;		   /* close once the output is written */
	bool dead;		   /* close now */
	bool busy;		   /* handling lines: do not free or recurse */
	char in[IN_CAP];
};

struct mgmt_call {
	struct mgmt_client *c; /* NULL once the client has gone */
	json_t *id;	       /* NULL for a notification */
	char conf_id[];
};

struct mgmt {
	struct sig *s; /* borrowed */
	char *path;
	int fd; /* listening */
	int epfd;
	int spare_fd; /* closed to shed a connection when out of fds */
	struct sig_fd *watch;
	bool bound; /* we created the file at path */
	dev_t dev;
	ino_t ino;
	TAILQ_HEAD(, mgmt_client) clients;
	unsigned n_clients;
};

typedef void(mgmt_method_h)(struct mgmt_client *c, json_t *id, json_t *params);

static void mgmt_client_settle(struct mgmt_client *c);

/* JSON helpers. */

/*
 * A string from signaling as JSON: null for NULL, and bytes that are not
 * UTF-8 replaced by '?' rather than failing the whole reply.
 */
static json_t *
mgmt_json_str(const char *s)
{
	json_t *j;
	char *copy;

	if (s == NULL)
		return json_null();
	j = json_string(s);
	if (j != NULL)
		return j;
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	j = json_string(copy);
	free(copy);
	return j;
}

/* An address: null when not known yet. */
static json_t *
mgmt_json_addr(const char *s)
{
	return s[0] == '\0' ? json_null() : mgmt_json_str(s);
}

static json_t *
mgmt_json_uint(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/*
 * o[key] = v, stealing v. Once a set fails (out of memory) *op is released
 * and NULL, and later sets only release their value: build a whole object,
 * then check it once.
 */
static void
mgmt_set(json_t **op, const char *key, json_t *v)
{
	if (*op == NULL) {
		json_decref(v);
		return;
	}
	if (json_object_set_new(*op, key, v) < 0) {
		json_decref(*op);
		*op = NULL;
	}
}

/* Output. */

static bool
mgmt_client_out_empty(const struct mgmt_client *c)
{
	return c->out_off == c->out_len;
}

static void
mgmt_client_drop(struct mgmt_client *c, const char *why)
{
	if (c->dead)
		return;
	FC_INFO(LOG, "dropping client pid %d uid %u: %s", c->pid, c->uid, why);
	c->dead = true;
}

/* Send what is queued; keep the rest for EPOLLOUT. */
static void
mgmt_client_flush(struct mgmt_client *c)
{
	ssize_t n;

	while (!c->dead && !mgmt_client_out_empty(c)) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				mgmt_client_drop(c, strerror(errno));
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

/* Queue buf (len bytes, ending with its newline) and send what fits. */
static void
mgmt_client_write(struct mgmt_client *c, const char *buf, size_t len)
{
	size_t used, cap;
	char *p;

	if (c->dead)
		return;
	if (c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	used = c->out_len;
	if (len > OUT_MAX - used) {
		mgmt_client_drop(c, "too much output queued");
		return;
	}
	if (used + len > c->out_cap) {
		cap = c->out_cap ? c->out_cap : 4096;
		while (cap < used + len)
			cap *= 2;
		p = realloc(c->out, cap);
		if (p == NULL) {
			mgmt_client_drop(c, "out of memory");
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + used, buf, len);
	c->out_len += len;
	mgmt_client_flush(c);
}

static void
mgmt_client_send_json(struct mgmt_client *c, const json_t *msg)
{
	const size_t flags = JSON_COMPACT;
	size_t n;
	char *buf;

	n = json_dumpb(msg, NULL, 0, flags);
	if (n == 0) {
		mgmt_client_drop(c, "cannot encode a reply");
		return;
	}
	buf = malloc(n + 1);
	if (buf == NULL) {
		mgmt_client_drop(c, "out of memory");
		return;
	}
	json_dumpb(msg, buf, n, flags);
	buf[n] = '\n';
	mgmt_client_write(c, buf, n + 1);
	free(buf);
}

/* Replies. id: borrowed, NULL for a notification (no reply). */

/* Send {"jsonrpc":"2.0", key: body, "id": id}; body is stolen. */
static void
mgmt_reply_send(struct mgmt_client *c, json_t *id, const char *key,
		json_t *body)
{
	json_t *msg = json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", key, body,
				"id", id);

	if (msg == NULL) {
		mgmt_client_drop(c, "out of memory");
		return;
	}
	mgmt_client_send_json(c, msg);
	json_decref(msg);
}

static void
mgmt_reply_error(struct mgmt_client *c, json_t *id, int code,
		 const char *message, json_t *data /* stolen, may be NULL */)
{
	json_t *err;

	if (id == NULL || c == NULL || c->dead) {
		json_decref(data);
		return;
	}
	/* message may quote the request's bytes, so it may not be UTF-8. */
	err = json_pack("{s:i, s:o}", "code", code, "message",
			mgmt_json_str(message));
	if (err != NULL && data != NULL)
		json_object_set_new(err, "data", data);
	else
		json_decref(data);
	mgmt_reply_send(c, id, "error", err);
}

static void
mgmt_reply_errno(struct mgmt_client *c, json_t *id, int err)
{
	FC_WARN(LOG, "internal error: %s", strerror(err));
	mgmt_reply_error(c, id, MGMT_RPC_INTERNAL, "internal error",
			 json_pack("{s:s}", "error", strerror(err)));
}

/* result: stolen; NULL means building it failed for want of memory. */
static void
mgmt_reply_result(struct mgmt_client *c, json_t *id, json_t *result)
{
	if (result == NULL) {
		mgmt_reply_errno(c, id, ENOMEM);
		return;
	}
	if (id == NULL || c == NULL || c->dead) {
		json_decref(result);
		return;
	}
	mgmt_reply_send(c, id, "result", result);
}

/* An error whose message is "<what>: <why>". */
static void
mgmt_reply_why(struct mgmt_client *c, json_t *id, int code, const char *what,
	       const char *why)
{
	char message[320];

	snprintf(message, sizeof(message), "%s: %s", what, why);
	mgmt_reply_error(c, id, code, message, NULL);
}

static void
mgmt_reply_bad_params(struct mgmt_client *c, json_t *id, const char *usage)
{
	mgmt_reply_why(c, id, MGMT_RPC_INVALID_PARAMS, "invalid params", usage);
}

/* Methods. */

static bool
mgmt_params_empty(const json_t *params)
{
	return params == NULL || json_is_null(params) ||
	       (json_is_object(params) && json_object_size(params) == 0) ||
	       (json_is_array(params) && json_array_size(params) == 0);
}

static void
mgmt_conf_list_one(const struct sig_conf_info *ci, void *arg)
{
	json_t *list = arg;
	json_t *o = json_object();

	mgmt_set(&o, "id", mgmt_json_str(ci->id));
	mgmt_set(&o, "uri", mgmt_json_str(ci->uri));
	mgmt_set(&o, "owner", mgmt_json_str(ci->owner));
	mgmt_set(&o, "participants", json_integer(ci->participants));
	mgmt_set(&o, "worker", json_integer(ci->worker));
	mgmt_set(&o, "created", mgmt_json_uint(ci->created));
	/* Out of memory: the conference is left out rather than failing. */
	if (o != NULL)
		json_array_append_new(list, o);
}

static void
mgmt_conf_list(struct mgmt_client *c, json_t *id, json_t *params)
{
	json_t *list;

	if (!mgmt_params_empty(params)) {
		mgmt_reply_bad_params(c, id, "conference.list takes none");
		return;
	}
	list = json_array();
	if (list == NULL) {
		mgmt_reply_errno(c, id, ENOMEM);
		return;
	}
	sig_conf_foreach(c->m->s, mgmt_conf_list_one, list);
	mgmt_reply_result(c, id, json_pack("{s:o}", "conferences", list));
}

/* Counters as a JSON object, in the table's order. */
struct mgmt_counter {
	const char *name;
	uint64_t v;
};

static json_t *
mgmt_counters_json(const struct mgmt_counter *c, size_t n)
{
	json_t *o = json_object();

	for (size_t i = 0; i < n; i++)
		mgmt_set(&o, c[i].name, mgmt_json_uint(c[i].v));
	return o;
}

/* RTCP: counters, the round trip, and what the peer reports of our
 * stream (null until it does). */
static json_t *
mgmt_rtcp_json(const struct mix_leg_stats *r)
{
	const struct mgmt_counter counters[] = {
		{"rx_sr", r->rtcp_rx_sr},
		{"rx_rr", r->rtcp_rx_rr},
		{"rx_malformed", r->rtcp_rx_malformed},
		{"tx", r->rtcp_tx},
	};
	json_t *o = mgmt_counters_json(counters, FC_ARRAY_SIZE(counters));
	json_t *peer = json_null();

	mgmt_set(&o, "rtt_ms",
		 r->rtt_ms >= 0 ? json_integer(r->rtt_ms) : json_null());
	if (r->peer_report) {
		peer = json_object();
		mgmt_set(&peer, "lost", json_integer(r->peer_lost));
		mgmt_set(&peer, "fraction_lost",
			 json_real(r->peer_fraction / 256.0));
		mgmt_set(&peer, "jitter_ms", mgmt_json_uint(r->peer_jitter_ms));
	}
	mgmt_set(&o, "peer", peer);
	return o;
}

static json_t *
mgmt_rtp_json(const struct sig_part_info *p)
{
	const struct mix_leg_stats *r = &p->rtp;
	const struct mgmt_counter counters[] = {
		{"rx_packets", r->rx_packets},
		{"rx_bytes", r->rx_bytes},
		{"rx_foreign", r->rx_foreign},
		{"rx_malformed", r->rx_malformed},
		{"rx_other_pt", r->rx_other_pt},
		{"rx_late", r->rx_late},
		{"rx_overflow", r->rx_overflow},
		{"rx_lost", r->rx_lost},
		{"rx_concealed", r->rx_concealed},
		{"rx_silent", r->rx_silent},
		{"jitter_ms", r->jitter_ms},
		{"jb_target", r->jb_target},
		{"rx_unmixed", r->rx_unmixed},
		{"underruns", r->underruns},
		{"tx_packets", r->tx_packets},
		{"tx_bytes", r->tx_bytes},
		{"tx_dropped", r->tx_dropped},
		{"rx_dtmf", r->rx_dtmf},
	};
	json_t *o;

	if (!p->have_rtp)
		return json_null();
	o = mgmt_counters_json(counters, FC_ARRAY_SIZE(counters));
	mgmt_set(&o, "latched", json_boolean(r->latched));
	mgmt_set(&o, "rtcp", mgmt_rtcp_json(r));
	return o;
}

static json_t *
mgmt_part_json(const struct sig_part_info *p)
{
	json_t *o = json_object();

	mgmt_set(&o, "uri", mgmt_json_str(p->uri));
	mgmt_set(&o, "call_id", mgmt_json_str(p->call_id));
	mgmt_set(&o, "leg_uri", mgmt_json_str(p->leg_uri));
	mgmt_set(&o, "codec", mgmt_json_str(p->codec));
	mgmt_set(&o, "ptime_ms", mgmt_json_uint(p->ptime_ms));
	mgmt_set(&o, "state", mgmt_json_str(p->state));
	mgmt_set(&o, "direction", mgmt_json_str(p->direction));
	mgmt_set(&o, "joining", mgmt_json_str(p->joining));
	mgmt_set(&o, "mute", json_boolean(p->mute));
	mgmt_set(&o, "deaf", json_boolean(p->deaf));
	mgmt_set(&o, "gain_db", json_integer(p->gain_db));
	mgmt_set(&o, "local_rtp", mgmt_json_addr(p->local_rtp));
	mgmt_set(&o, "remote_rtp", mgmt_json_addr(p->remote_rtp));
	mgmt_set(&o, "rtp", mgmt_rtp_json(p));
	return o;
}

static json_t *
mgmt_conf_json(const struct sig_conf_info *ci,
	       const struct sig_part_info *parts, unsigned n)
{
	json_t *o = json_object();
	json_t *list = json_array();
	json_t *p;

	for (unsigned i = 0; i < n && list != NULL; i++) {
		p = mgmt_part_json(&parts[i]);
		if (json_array_append_new(list, p) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	mgmt_set(&o, "id", mgmt_json_str(ci->id));
	mgmt_set(&o, "uri", mgmt_json_str(ci->uri));
	mgmt_set(&o, "owner", mgmt_json_str(ci->owner));
	mgmt_set(&o, "worker", json_integer(ci->worker));
	mgmt_set(&o, "created", mgmt_json_uint(ci->created));
	mgmt_set(&o, "participants", list);
	return o;
}

static void
mgmt_reply_no_conf(struct mgmt_client *c, json_t *id, const char *conf_id)
{
	mgmt_reply_error(c, id, MGMT_RPC_NO_CONF, "no such conference",
			 json_pack("{s:s}", "id", conf_id));
}

/* sig_conf_show's answer, on the control thread. */
static void
mgmt_conf_show_h(void *arg, int err, const struct sig_conf_info *ci,
		 const struct sig_part_info *parts, unsigned n)
{
	struct mgmt_call *call = arg;
	struct mgmt_client *c = call->c;

	if (c == NULL) {
		FC_DEBUG(LOG, "conference.show %s: its client left first",
			 call->conf_id);
		goto out;
	}
	c->pending = NULL;
	if (ci == NULL) {
		if (err == ENOENT)
			mgmt_reply_no_conf(c, call->id, call->conf_id);
		else
			mgmt_reply_errno(c, call->id, err ? err : EIO);
	} else {
		if (err != 0)
			FC_WARN(LOG, "conference.show %s: %s; no RTP counters",
				call->conf_id, strerror(err));
		mgmt_reply_result(c, call->id, mgmt_conf_json(ci, parts, n));
	}
	mgmt_client_settle(c); /* may free c */
out:
	json_decref(call->id);
	free(call);
}

/* RFC 4579 4.2: the focus calls a participant in. */
static void
mgmt_conf_dialout(struct mgmt_client *c, json_t *id, json_t *params)
{
	static const char usage[] =
		"conference.dialout takes {\"id\": STRING, \"uri\": SIP-URI}";
	const char *conf_id, *uri;
	int err;

	if (!json_is_object(params) || json_object_size(params) != 2 ||
	    !json_is_string(json_object_get(params, "id")) ||
	    !json_is_string(json_object_get(params, "uri"))) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	conf_id = json_string_value(json_object_get(params, "id"));
	uri = json_string_value(json_object_get(params, "uri"));
	err = sig_conf_dialout(c->m->s, conf_id, uri);
	switch (err) {
	case 0:
		mgmt_reply_result(c, id,
				  json_pack("{s:s,s:s,s:s}", "id", conf_id,
					    "uri", uri, "state",
					    "dialing-out"));
		break;
	case ENOENT:
		mgmt_reply_no_conf(c, id, conf_id);
		break;
	case EINVAL:
		mgmt_reply_bad_params(c, id, "uri must be a sip: or sips: URI");
		break;
	default:
		mgmt_reply_errno(c, id, err);
	}
}

/* Manual admission on or off for a conference. */
static void
mgmt_conf_admission(struct mgmt_client *c, json_t *id, json_t *params)
{
	static const char usage[] = "conference.admission takes {\"id\": "
				    "STRING, \"mode\": \"manual\" or \"auto\"}";
	const char *conf_id, *mode;

	if (!json_is_object(params) || json_object_size(params) != 2 ||
	    !json_is_string(json_object_get(params, "id")) ||
	    !json_is_string(json_object_get(params, "mode"))) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	conf_id = json_string_value(json_object_get(params, "id"));
	mode = json_string_value(json_object_get(params, "mode"));
	if (strcmp(mode, "manual") != 0 && strcmp(mode, "auto") != 0) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	if (sig_conf_set_admission(c->m->s, conf_id,
				   strcmp(mode, "manual") == 0) != 0) {
		mgmt_reply_no_conf(c, id, conf_id);
		return;
	}
	mgmt_reply_result(c, id,
			  json_pack("{s:s,s:s}", "id", conf_id, "mode", mode));
}

/* ENOENT: no such conference; ESRCH: no such participant in it. */
static void
mgmt_reply_no_one(struct mgmt_client *c, json_t *id, int err,
		  const char *conf_id, const char *who)
{
	if (err == ENOENT)
		mgmt_reply_no_conf(c, id, conf_id);
	else
		mgmt_reply_error(c, id, MGMT_RPC_NO_PARTICIPANT,
				 "no such participant",
				 json_pack("{s:s,s:s}", "id", conf_id,
					   "participant", who));
}

/* Answer a caller waiting for manual admission. */
static void
mgmt_participant_admit(struct mgmt_client *c, json_t *id, json_t *params)
{
	static const char usage[] = "participant.admit takes {\"id\": "
				    "CONFERENCE, \"participant\": CALL-ID or "
				    "URI}";
	const char *conf_id, *who;
	int err;

	if (!json_is_object(params) || json_object_size(params) != 2 ||
	    !json_is_string(json_object_get(params, "id")) ||
	    !json_is_string(json_object_get(params, "participant"))) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	conf_id = json_string_value(json_object_get(params, "id"));
	who = json_string_value(json_object_get(params, "participant"));
	err = sig_conf_admit(c->m->s, conf_id, who);
	if (err == 0)
		mgmt_reply_result(c, id,
				  json_pack("{s:s,s:s}", "id", conf_id,
					    "participant", who));
	else if (err == ENOENT || err == ESRCH)
		mgmt_reply_no_one(c, id, err, conf_id, who);
	else
		mgmt_reply_error(c, id, MGMT_RPC_BUSY_STATE,
				 "participant is not waiting for admission",
				 json_pack("{s:s}", "participant", who));
}

/* A participant's audio controls: mute, deaf, gain. */
static void
mgmt_participant_audio(struct mgmt_client *c, json_t *id, json_t *params)
{
	static const char usage[] =
		"participant.audio takes {\"id\": CONFERENCE, \"participant\": "
		"CALL-ID or URI} and at least one of \"mute\": BOOL, \"deaf\": "
		"BOOL, \"gain_db\": INTEGER -24..24";
	json_t *jm, *jd, *jg;
	const char *conf_id, *who;
	struct sig_audio a;
	int mute = -1, deaf = -1, gain = 0, err;
	size_t known = 2;

	if (!json_is_object(params) ||
	    !json_is_string(json_object_get(params, "id")) ||
	    !json_is_string(json_object_get(params, "participant"))) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	jm = json_object_get(params, "mute");
	jd = json_object_get(params, "deaf");
	jg = json_object_get(params, "gain_db");
	known += (jm != NULL) + (jd != NULL) + (jg != NULL);
	if (known == 2 || json_object_size(params) != known ||
	    (jm && !json_is_boolean(jm)) || (jd && !json_is_boolean(jd)) ||
	    (jg && (!json_is_integer(jg) || json_integer_value(jg) < -24 ||
		    json_integer_value(jg) > 24))) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	if (jm)
		mute = json_is_true(jm);
	if (jd)
		deaf = json_is_true(jd);
	if (jg)
		gain = (int)json_integer_value(jg);
	conf_id = json_string_value(json_object_get(params, "id"));
	who = json_string_value(json_object_get(params, "participant"));
	err = sig_conf_audio(c->m->s, conf_id, who, mute, deaf,
			     jg ? &gain : NULL, &a);
	if (err == 0)
		mgmt_reply_result(c, id,
				  json_pack("{s:s,s:s,s:b,s:b,s:i}", "id",
					    conf_id, "participant", who, "mute",
					    a.mute, "deaf", a.deaf, "gain_db",
					    a.gain_db));
	else if (err == ENOENT || err == ESRCH)
		mgmt_reply_no_one(c, id, err, conf_id, who);
	else if (err == EBUSY)
		mgmt_reply_error(c, id, MGMT_RPC_BUSY_STATE,
				 "participant is moving, leaving or in the "
				 "lobby",
				 json_pack("{s:s}", "participant", who));
	else
		mgmt_reply_errno(c, id, err);
}

/* RFC 4579 4.10: move a participant to another conference. */
static void
mgmt_participant_move(struct mgmt_client *c, json_t *id, json_t *params)
{
	static const char usage[] =
		"participant.move takes {\"id\": CONFERENCE, \"participant\": "
		"CALL-ID or URI, \"to\": CONFERENCE}";
	const char *from, *who, *to;
	int err;

	if (!json_is_object(params) || json_object_size(params) != 3 ||
	    !json_is_string(json_object_get(params, "id")) ||
	    !json_is_string(json_object_get(params, "participant")) ||
	    !json_is_string(json_object_get(params, "to"))) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	from = json_string_value(json_object_get(params, "id"));
	who = json_string_value(json_object_get(params, "participant"));
	to = json_string_value(json_object_get(params, "to"));
	err = sig_conf_move(c->m->s, from, who, to);
	switch (err) {
	case 0:
		mgmt_reply_result(c, id,
				  json_pack("{s:s,s:s,s:s}", "participant", who,
					    "from", from, "to", to));
		break;
	case ENOENT:
	case ESRCH:
		mgmt_reply_no_one(c, id, err, from, who);
		break;
	case EALREADY:
		mgmt_reply_bad_params(c, id, "already in that conference");
		break;
	case EAGAIN:
	case EBUSY:
		mgmt_reply_error(c, id, MGMT_RPC_BUSY_STATE,
				 "participant is not in a stable call state",
				 json_pack("{s:s}", "participant", who));
		break;
	default:
		mgmt_reply_errno(c, id, err);
	}
}

static void
mgmt_conf_show(struct mgmt_client *c, json_t *id, json_t *params)
{
	static const char usage[] = "conference.show takes {\"id\": STRING}";
	struct mgmt_call *call;
	const char *conf_id;
	json_t *v = NULL;
	size_t len;
	int err;

	if (json_is_object(params) && json_object_size(params) == 1)
		v = json_object_get(params, "id");
	else if (json_is_array(params) && json_array_size(params) == 1)
		v = json_array_get(params, 0);
	if (!json_is_string(v)) {
		mgmt_reply_bad_params(c, id, usage);
		return;
	}
	conf_id = json_string_value(v);
	len = strlen(conf_id);

	call = calloc(1, sizeof(*call) + len + 1);
	if (call == NULL) {
		mgmt_reply_errno(c, id, ENOMEM);
		return;
	}
	memcpy(call->conf_id, conf_id, len + 1);
	call->c = c;
	call->id = json_incref(id);
	c->pending = call;
	err = sig_conf_show(c->m->s, call->conf_id, mgmt_conf_show_h, call);
	if (err == 0)
		return;
	/* The callback never runs. */
	c->pending = NULL;
	if (err == ENOENT)
		mgmt_reply_no_conf(c, id, call->conf_id);
	else
		mgmt_reply_errno(c, id, err);
	json_decref(call->id);
	free(call);
}

static json_t *
mgmt_io_json(const struct dp_stats *io)
{
	const struct mgmt_counter counters[] = {
		{"rx_packets", io->rx_packets},
		{"rx_no_flow", io->rx_no_flow},
		{"rx_malformed", io->rx_malformed},
		{"rx_ring_full", io->rx_ring_full},
		{"rx_errors", io->rx_errors},
		{"rx_nombuf", io->rx_nombuf},
		{"flows", io->flows},
	};
	const struct mgmt_counter edge[] = {
		{"rx_short", io->rx_short},
		{"rx_bad_ip", io->rx_bad_ip},
		{"rx_bad_csum", io->rx_bad_csum},
		{"rx_fragments", io->rx_fragments},
		{"rx_not_ours", io->rx_not_ours},
		{"rx_other", io->rx_other},
		{"arp_replies", io->arp_replies},
		{"arp_ignored", io->arp_ignored},
		{"icmp_echo", io->icmp_echo},
		{"icmp_unreach", io->icmp_unreach},
		{"icmp_limited", io->icmp_limited},
		{"tx_unresolved", io->tx_unresolved},
		{"tx_held", io->tx_held},
	};
	json_t *o = mgmt_counters_json(counters, FC_ARRAY_SIZE(counters));
	json_t *e;

	/* The DPDK port's IPv4 edge: its drops by reason, its answers, and
	 * the checksums its NIC computes and checks. */
	if (io->edge) {
		e = mgmt_counters_json(edge, FC_ARRAY_SIZE(edge));
		mgmt_set(&e, "csum_offload",
			 json_pack("{s:b, s:b, s:b, s:b}", "rx_ipv4",
				   io->rx_ip_csum_hw, "rx_udp",
				   io->rx_udp_csum_hw, "tx_ipv4",
				   io->tx_ip_csum_hw, "tx_udp",
				   io->tx_udp_csum_hw));
		mgmt_set(&o, "edge", e);
	}
	return o;
}

static json_t *
mgmt_worker_json(unsigned index, const struct mix_worker_stats *w)
{
	const struct mgmt_counter counters[] = {
		{"worker", index},
		{"conferences", w->confs},
		{"legs", w->legs},
		{"ticks", w->ticks},
		{"overruns", w->overruns},
		{"tick_us_last", w->tick_ns_last / 1000},
		{"tick_us_max", w->tick_ns_max / 1000},
		{"tick_us_avg", w->tick_ns_avg / 1000},
		{"load_pct", w->load_permille / 10},
		{"headroom_pct",
		 w->load_permille >= 1000 ? 0 : (1000 - w->load_permille) / 10},
		{"rx_no_leg", w->rx_no_leg},
		{"tx_errors", w->tx_errors},
	};

	return mgmt_counters_json(counters, FC_ARRAY_SIZE(counters));
}

/* sig_media_stats's answer, on the control thread. */
static void
mgmt_stats_h(void *arg, const struct dp_stats *io,
	     const struct mix_worker_stats *ws, unsigned n)
{
	struct mgmt_call *call = arg;
	struct mgmt_client *c = call->c;
	struct sig_stats st;
	json_t *o, *workers;

	if (c == NULL)
		goto out;
	c->pending = NULL;
	memset(&st, 0, sizeof(st));
	sig_stats_get(c->m->s, &st);
	o = json_object();
	mgmt_set(&o, "conferences", json_integer(st.conferences));
	mgmt_set(&o, "legs", json_integer(st.legs));
	mgmt_set(&o, "invites", mgmt_json_uint(st.invites));
	mgmt_set(&o, "rejected", mgmt_json_uint(st.rejected));
	mgmt_set(&o, "io", mgmt_io_json(io));
	workers = json_array();
	for (unsigned i = 0; i < n && workers; i++)
		json_array_append_new(workers, mgmt_worker_json(i, &ws[i]));
	mgmt_set(&o, "workers", workers);
	mgmt_reply_result(c, call->id, o);
	mgmt_client_settle(c); /* may free c */
out:
	json_decref(call->id);
	free(call);
}

static void
mgmt_stats(struct mgmt_client *c, json_t *id, json_t *params)
{
	struct mgmt_call *call;
	int err;

	if (!mgmt_params_empty(params)) {
		mgmt_reply_bad_params(c, id, "stats takes none");
		return;
	}
	call = calloc(1, sizeof(*call) + 1);
	if (call == NULL) {
		mgmt_reply_errno(c, id, ENOMEM);
		return;
	}
	call->c = c;
	call->id = json_incref(id);
	c->pending = call;
	err = sig_media_stats(c->m->s, mgmt_stats_h, call);
	if (err == 0)
		return;
	c->pending = NULL;
	mgmt_reply_errno(c, id, err);
	json_decref(call->id);
	free(call);
}

static const struct {
	const char *name;
	mgmt_method_h *h;
} mgmt_methods[] = {
	{"conference.list", mgmt_conf_list},
	{"conference.show", mgmt_conf_show},
	{"stats", mgmt_stats},
	{"conference.dialout", mgmt_conf_dialout},
	{"participant.move", mgmt_participant_move},
	{"participant.admit", mgmt_participant_admit},
	{"participant.audio", mgmt_participant_audio},
	{"conference.admission", mgmt_conf_admission},
};

/* Requests. */

static void
mgmt_invalid_request(struct mgmt_client *c, json_t *id, const char *why)
{
	mgmt_reply_why(c, id, MGMT_RPC_INVALID_REQUEST, "invalid request", why);
}

static void
mgmt_request_handle(struct mgmt_client *c, const char *line, size_t len)
{
	json_t *req, *id, *v, *params;
	char message[200];
	json_error_t jerr;
	const char *method;

	req = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			 &jerr);
	if (req == NULL) {
		snprintf(message, sizeof(message), "parse error: %s",
			 jerr.text);
		mgmt_reply_error(c, json_null(), MGMT_RPC_PARSE, message, NULL);
		return;
	}
	if (json_is_array(req)) {
		mgmt_reply_error(c, json_null(), MGMT_RPC_INVALID_REQUEST,
				 "batch requests are not supported", NULL);
		goto out;
	}
	if (!json_is_object(req)) {
		mgmt_invalid_request(c, json_null(), "not an object");
		goto out;
	}
	id = json_object_get(req, "id");
	if (id != NULL && !json_is_string(id) && !json_is_number(id) &&
	    !json_is_null(id)) {
		mgmt_invalid_request(c, json_null(),
				     "\"id\" must be a string, a number or "
				     "null");
		goto out;
	}
	v = json_object_get(req, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
		mgmt_invalid_request(c, id ? id : json_null(),
				     "\"jsonrpc\" must be \"2.0\"");
		goto out;
	}
	v = json_object_get(req, "method");
	if (!json_is_string(v)) {
		mgmt_invalid_request(c, id ? id : json_null(),
				     "\"method\" must be a string");
		goto out;
	}
	method = json_string_value(v);
	params = json_object_get(req, "params");
	if (params != NULL && !json_is_object(params) &&
	    !json_is_array(params) && !json_is_null(params)) {
		mgmt_reply_bad_params(c, id,
				      "\"params\" must be an object or an "
				      "array");
		goto out;
	}
	for (size_t i = 0; i < FC_ARRAY_SIZE(mgmt_methods); i++) {
		if (strcmp(method, mgmt_methods[i].name) == 0) {
			FC_DEBUG(LOG, "client pid %d: %s", c->pid, method);
			mgmt_methods[i].h(c, id, params);
			goto out;
		}
	}
	mgmt_reply_error(c, id, MGMT_RPC_NO_METHOD, "method not found",
			 json_pack("{s:o}", "method", mgmt_json_str(method)));
out:
	json_decref(req);
}

static bool
mgmt_line_blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	}
	return true;
}

/* Answer a line over MGMT_LINE_MAX, then close: where would it end? */
static void
mgmt_client_too_long(struct mgmt_client *c)
{
	char why[64];

	snprintf(why, sizeof(why), "line longer than %d bytes", MGMT_LINE_MAX);
	mgmt_invalid_request(c, json_null(), why);
	FC_INFO(LOG, "dropping client pid %d uid %u: request %s", c->pid,
		c->uid, why);
	c->closing = true;
}

/*
 * Handle the complete lines in the input buffer, one at a time, until one
 * leaves a request pending or a reply not completely written.
 */
static void
mgmt_client_work(struct mgmt_client *c)
{
	size_t len, next;
	char *line, *nl;

	while (!c->dead && !c->closing && c->pending == NULL &&
	       mgmt_client_out_empty(c)) {
		line = c->in + c->in_off;
		nl = memchr(line, '\n', c->in_len - c->in_off);
		if (nl != NULL) {
			len = (size_t)(nl - line);
			next = len + 1;
		} else if (c->eof && c->in_len > c->in_off) {
			/* The last line may lack its newline. */
			len = next = c->in_len - c->in_off;
		} else if (c->in_len - c->in_off == IN_CAP) {
			mgmt_client_too_long(c);
			break;
		} else {
			break;
		}
		c->in_off += next;
		if (len > MGMT_LINE_MAX) {
			/* Only a last line without its newline gets here. */
			mgmt_client_too_long(c);
			break;
		}
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (!mgmt_line_blank(line, len))
			mgmt_request_handle(c, line, len);
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
}

static void
mgmt_client_read(struct mgmt_client *c)
{
	ssize_t n;

	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == IN_CAP)
		return;
	n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, MSG_DONTWAIT);
	if (n > 0) {
		c->in_len += (size_t)n;
	} else if (n == 0) {
		c->eof = true;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		mgmt_client_drop(c, strerror(errno));
	}
}

/* Clients. */

static void
mgmt_client_free(struct mgmt_client *c)
{
	struct mgmt *m = c->m;

	if (c->pending != NULL) {
		FC_INFO(LOG,
			"client pid %d uid %u left before its reply to "
			"conference.show %s",
			c->pid, c->uid, c->pending->conf_id);
		c->pending->c = NULL;
	} else {
		FC_DEBUG(LOG, "client pid %d uid %u left", c->pid, c->uid);
	}
	TAILQ_REMOVE(&m->clients, c, link);
	m->n_clients--;
	epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	free(c);
}

/*
 * After anything happened to c: handle its waiting lines, then close it if
 * it is done, or watch what it waits for. May free c.
 */
static void
mgmt_client_settle(struct mgmt_client *c)
{
	struct epoll_event ev;
	uint32_t want = 0;

	if (c->busy)
		return;
	c->busy = true;
	mgmt_client_work(c);
	c->busy = false;

	if (c->dead)
		goto close;
	if (mgmt_client_out_empty(c) && c->pending == NULL &&
	    (c->closing || (c->eof && c->in_len == c->in_off)))
		goto close;

	if (!c->eof && !c->closing && c->pending == NULL &&
	    mgmt_client_out_empty(c))
		want |= EPOLLIN | EPOLLRDHUP;
	if (!mgmt_client_out_empty(c))
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(c->m->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		mgmt_client_drop(c, strerror(errno));
		goto close;
	}
	c->events = want;
	return;
close:
	mgmt_client_free(c);
}

static void
mgmt_client_event(struct mgmt_client *c, uint32_t events)
{
	if (events & (EPOLLHUP | EPOLLERR)) {
		/* The peer closed: nobody is left to read a reply. */
		mgmt_client_free(c);
		return;
	}
	if (events & EPOLLOUT)
		mgmt_client_flush(c);
	if (events & (EPOLLIN | EPOLLRDHUP))
		mgmt_client_read(c);
	mgmt_client_settle(c);
}

/* Tell a client we cannot serve it, best effort, and close it. */
static void
mgmt_client_refuse(int fd)
{
	char line[160];
	int n;

	n = snprintf(line, sizeof(line),
		     "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,"
		     "\"message\":\"too many clients\"},\"id\":null}\n",
		     MGMT_RPC_BUSY);
	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		FC_DEBUG(LOG, "refusing a client: %s", strerror(errno));
	close(fd);
}

static void
mgmt_client_add(struct mgmt *m, int fd)
{
	struct mgmt_client *c;
	struct epoll_event ev;
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	if (m->n_clients >= MGMT_CLIENTS_MAX) {
		FC_WARN(LOG, "refusing a client: %d clients connected",
			MGMT_CLIENTS_MAX);
		mgmt_client_refuse(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		FC_WARN(LOG, "refusing a client: out of memory");
		close(fd);
		return;
	}
	c->m = m;
	c->fd = fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		c->pid = cred.pid;
		c->uid = cred.uid;
	}
	c->events = EPOLLIN | EPOLLRDHUP;
	memset(&ev, 0, sizeof(ev));
	ev.events = c->events;
	ev.data.ptr = c;
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		FC_WARN(LOG, "refusing a client: epoll: %s", strerror(errno));
		close(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&m->clients, c, link);
	m->n_clients++;
	FC_DEBUG(LOG, "client pid %d uid %u connected", c->pid, c->uid);
}

static void
mgmt_accept(struct mgmt *m)
{
	int fd;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		fd = accept4(m->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			mgmt_client_add(m, fd);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
			continue;
		case EMFILE:
		case ENFILE:
			/* Shed the connection, or the loop would spin. */
			FC_WARN(LOG, "refusing a client: %s", strerror(errno));
			if (m->spare_fd >= 0)
				close(m->spare_fd);
			fd = accept(m->fd, NULL, NULL);
			if (fd >= 0)
				close(fd);
			m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			return;
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		default:
			FC_WARN(LOG, "accept: %s", strerror(errno));
			return;
		}
	}
}

/* The epoll set is ready: serve what it holds. */
static void
mgmt_epoll_h(int fd, void *arg)
{
	struct epoll_event evs[EVENTS_MAX];
	struct mgmt *m = arg;
	int n;

	n = epoll_wait(fd, evs, EVENTS_MAX, 0);
	if (n < 0 && errno != EINTR)
		FC_WARN(LOG, "epoll_wait: %s", strerror(errno));
	/* Each client appears at most once, so freeing it here is safe. */
	for (int i = 0; i < n; i++) {
		if (evs[i].data.ptr == NULL)
			mgmt_accept(m);
		else
			mgmt_client_event(evs[i].data.ptr, evs[i].events);
	}
}

/* The listening socket. */

/*
 * bind() found a file at the path: remove it if it is a socket nobody
 * listens on (0: try bind again), or say why not.
 */
static int
mgmt_sock_reclaim(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r, err;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : errno;
	if (!S_ISSOCK(st.st_mode)) {
		FC_ERR(LOG, "%s exists and is not a socket", sa->sun_path);
		return EADDRINUSE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	err = errno;
	close(fd);
	if (r == 0 || err == EAGAIN || err == EINPROGRESS) {
		FC_ERR(LOG, "another server answers on %s", sa->sun_path);
		return EADDRINUSE;
	}
	if (err != ECONNREFUSED) {
		FC_ERR(LOG, "cannot tell whether %s is in use: %s",
		       sa->sun_path, strerror(err));
		return err;
	}
	FC_WARN(LOG, "removing stale socket %s", sa->sun_path);
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return errno;
	return 0;
}

static int
mgmt_sock_listen(struct mgmt *m)
{
	struct sockaddr_un sa;
	struct stat st;
	int err;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, m->path, strlen(m->path) + 1);

	m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd < 0)
		return errno;
	if (bind(m->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EADDRINUSE)
			return errno;
		err = mgmt_sock_reclaim(&sa);
		if (err != 0)
			return err;
		if (bind(m->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return errno;
	}
	m->bound = true;
	if (lstat(m->path, &st) < 0)
		return errno;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	if (chmod(m->path, SOCK_MODE) < 0)
		return errno;
	if (listen(m->fd, BACKLOG) < 0)
		return errno;
	return 0;
}

int
mgmt_alloc(struct mgmt **mp, struct sig *s, const char *path)
{
	struct sockaddr_un sa;
	struct epoll_event ev;
	struct mgmt *m;
	int err;

	if (mp == NULL || s == NULL || path == NULL || path[0] == '\0')
		return EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return ENAMETOOLONG;

	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ENOMEM;
	m->s = s;
	m->fd = m->epfd = m->spare_fd = -1;
	TAILQ_INIT(&m->clients);
	m->path = strdup(path);
	if (m->path == NULL) {
		err = ENOMEM;
		goto out;
	}
	err = mgmt_sock_listen(m);
	if (err != 0)
		goto out;
	m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (m->spare_fd < 0) {
		err = errno;
		goto out;
	}
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0) {
		err = errno;
		goto out;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL; /* the listening socket */
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->fd, &ev) < 0) {
		err = errno;
		goto out;
	}
	err = sig_fd_watch(&m->watch, s, m->epfd, mgmt_epoll_h, m);
	if (err != 0)
		goto out;
	FC_INFO(LOG, "listening on %s", m->path);
	*mp = m;
	return 0;
out:
	FC_ERR(LOG, "cannot serve %s: %s", path, strerror(err));
	mgmt_free(m);
	return err;
}

void
mgmt_free(struct mgmt *m)
{
	struct stat st;

	if (m == NULL)
		return;
	while (!TAILQ_EMPTY(&m->clients))
		mgmt_client_free(TAILQ_FIRST(&m->clients));
	if (m->watch != NULL)
		sig_fd_unwatch(m->watch);
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->fd >= 0)
		close(m->fd);
	if (m->spare_fd >= 0)
		close(m->spare_fd);
	/* Remove the file only while it is still ours. */
	if (m->bound && lstat(m->path, &st) == 0 && st.st_dev == m->dev &&
	    st.st_ino == m->ino)
		unlink(m->path);
	free(m->path);
	free(m);
}

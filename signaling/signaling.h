/*
 * signaling.h - the SIP focus (RFC 4579) on the control thread.
 *
 * struct sig owns the Sofia-SIP event loop (su_root), the nua stack, and
 * every conference, leg and dialog. It programs the media plane through
 * the dataplane's and mixers' asynchronous calls and collects their replies
 * when the shared eventfd fires. Nothing else in focusd sees a Sofia type:
 * other parts register file descriptors with sig_fd_watch() and read the
 * conference state through the sig_conf_* calls below, copied out.
 *
 * Threads: every function here runs on the control thread, the one that
 * calls sig_run().
 */
#ifndef FOCUSD_SIGNALING_H
#define FOCUSD_SIGNALING_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#include "dataplane/dataplane.h"
#include "mixer/mixer.h"

struct sig_conf_opts {
	const char *listen;  /* "ADDR:PORT" for SIP over UDP and TCP */
	const char *domain;  /* conference URIs are sip:ID@domain */
	const char *factory; /* user part of the conference factory URI */
	bool auto_create;    /* RFC 4579 4.4: INVITE creates a conference */
	/* POSIX extended regex an auto-created ID must match; NULL: any ID
	 * of URI user characters. */
	const char *conf_id_pattern;
	/* RFC 4579 4.5: answer a factory INVITE with 200 from the new
	 * conference (false), or redirect it there with 302 (true). */
	bool factory_redirect;
	/* Seconds such a conference waits for its first participant. */
	unsigned conf_empty_timeout;
	/* Hz conferences mix at (mix_rate_valid); 0: MIX_RATE_DEFAULT. */
	unsigned mix_rate;
	/* Talkers mixed at once, the loudest; 0: everybody. */
	unsigned max_talkers;
	/* Percent of the tick period every worker must exceed (smoothed
	 * tick time) before new joins are refused with 503; 0: never. */
	unsigned max_load;
	/* SIP digest users (Sofia-SIP auth module file: user:password:realm
	 * or htdigest user:realm:HA1 lines), or NULL: nobody can
	 * authenticate and owner/moderator actions are refused. */
	const char *users_file;
	const char *realm;	/* digest realm; default: the domain host */
	const char *moderators; /* comma-separated usernames */
	/* RFC 4579 4.3: user part of the conference application URI, or
	 * NULL for none. */
	const char *application;
	const char *user_agent;
};

struct sig;

int sig_alloc(struct sig **sp, const struct sig_conf_opts *opts, struct dp *dp,
	      struct mix_worker **workers, unsigned n_workers, int efd);
/* Run the event loop until sig_shutdown() completes. */
int sig_run(struct sig *s);
/*
 * Begin an orderly stop: hang up every leg, wait for the media plane to
 * hand everything back and for nua to finish, then leave sig_run().
 */
void sig_shutdown(struct sig *s);
void sig_free(struct sig *s);
/* The address SIP listens on, as "host:port". */
const char *sig_listen_addr(const struct sig *s);
/* The host[:port] of conference URIs (--domain or derived). */
const char *sig_domain(const struct sig *s);

/* File descriptors served from the same loop (mgmt socket, signals). */
typedef void(sig_fd_h)(int fd, void *arg);
struct sig_fd;
int sig_fd_watch(struct sig_fd **wp, struct sig *s, int fd, sig_fd_h *h,
		 void *arg);
void sig_fd_unwatch(struct sig_fd *w);

/* Read-only views for the management socket. */
struct sig_conf_info {
	const char *id;
	const char *uri;
	const char *owner; /* who created it (AOR), or NULL */
	unsigned participants;
	unsigned worker;
	uint64_t created; /* seconds since the epoch */
};

struct sig_part_info {
	const char *uri; /* the participant's address (From or To) */
	const char *call_id;
	const char *leg_uri;   /* the leg's own URI (;gr=), see sig_priv.h */
	const char *codec;     /* "PCMU", "PCMA" */
	unsigned ptime_ms;     /* of the packets the focus sends it */
	const char *state;     /* RFC 4575 endpoint status words */
	const char *direction; /* the peer's SDP direction */
	const char *joining;   /* "dialed-in" */
	bool mute, deaf;       /* the NOC's controls (sig_conf_audio) */
	int gain_db;
	char local_rtp[48];  /* "addr:port" */
	char remote_rtp[48]; /* where RTP goes now */
	struct mix_leg_stats rtp;
	bool have_rtp; /* the worker answered with counters */
};

typedef void(sig_conf_h)(const struct sig_conf_info *ci, void *arg);
void sig_conf_foreach(struct sig *s, sig_conf_h *h, void *arg);

/*
 * Look conference `id` up and gather its participants with fresh RTP
 * counters from its worker. Returns 0, and then h runs later on the control
 * thread once the worker replied (a worker answers within one poll, 1 ms
 * when idle; callers that must not wait on a wedged worker keep their own
 * timeout, as focusctl does); or an errno, ENOENT when there is no such
 * conference, and then h never runs.
 */
typedef void(sig_show_h)(void *arg, int err, const struct sig_conf_info *ci,
			 const struct sig_part_info *parts, unsigned n);
int sig_conf_show(struct sig *s, const char *id, sig_show_h *h, void *arg);

/*
 * RFC 4579 4.2: the focus calls uri (sip: or sips:) into conference id.
 * Returns 0 once the INVITE is out (its progress shows in
 * conference.show and the conference event package), ENOENT (no such
 * conference), EINVAL (not a SIP URI), EADDRINUSE (no RTP port), EAGAIN
 * (shutting down) or ENOMEM.
 */
int sig_conf_dialout(struct sig *s, const char *id, const char *uri);

/*
 * RFC 4579 4.10: move the participant of conference from_id whose Call-ID
 * or URI is who into conference to_id (made if it does not exist). 0,
 * ENOENT (no from_id), ESRCH (no such participant), EALREADY, EAGAIN
 * (its dialog is still being set up), EBUSY, ENOMEM.
 */
int sig_conf_move(struct sig *s, const char *from_id, const char *who,
		  const char *to_id);

/*
 * Manual admission (feature referral's AnswerCall): with it on, an INVITE
 * to conference id gets 180 and waits; sig_conf_admit answers it. 0,
 * ENOENT (no conference), ESRCH (no such participant), EALREADY (it was
 * not waiting).
 */
int sig_conf_set_admission(struct sig *s, const char *id, bool manual);

/* A participant's audio controls, as they are after a change. */
struct sig_audio {
	bool mute;   /* what it says is not mixed */
	bool deaf;   /* it hears nothing */
	int gain_db; /* on what it says, -24..+24 */
};
/*
 * Set participant who's controls in conference id: mute/deaf 0 or 1, or
 * -1 to leave as is; gain_db NULL leaves it. 0 and *out filled, ENOENT
 * (conference), ESRCH (participant), EINVAL (gain out of range), EBUSY
 * (moving, leaving, or in the application's lobby).
 */
int sig_conf_audio(struct sig *s, const char *id, const char *who, int mute,
		   int deaf, const int *gain_db, struct sig_audio *out);
int sig_conf_admit(struct sig *s, const char *id, const char *who);

/* Process-wide counters the management socket reports. */
struct sig_stats {
	unsigned conferences;
	unsigned legs;
	uint64_t invites;
	uint64_t rejected;
};
void sig_stats_get(struct sig *s, struct sig_stats *st);

/*
 * The media plane's counters: the io lcore's (packets to no participant's
 * port, not RTP, ring full, ...) and every worker's (ticks, overruns, tick
 * time). Asynchronous like sig_conf_show: returns 0 and h runs once every
 * lcore replied, or an errno and h never runs.
 */
typedef void(sig_media_stats_h)(void *arg, const struct dp_stats *io,
				const struct mix_worker_stats *workers,
				unsigned n_workers);
int sig_media_stats(struct sig *s, sig_media_stats_h *h, void *arg);

#endif

/*
 * sig_priv.h - signaling's private state, shared by its files only.
 *
 * Sofia-SIP's magic types are fixed here, before any Sofia header, so every
 * callback receives our own structs: the nua callback gets struct sig and
 * the leg of the handle.
 */
#ifndef FOCUSD_SIG_PRIV_H
#define FOCUSD_SIG_PRIV_H

struct sig;
struct sig_leg;
struct sig_fd;

#define SU_ROOT_MAGIC_T struct sig
#define SU_WAKEUP_ARG_T struct sig_fd
#define SU_TIMER_ARG_T	struct sig
#define NUA_MAGIC_T	struct sig
#define NUA_HMAGIC_T	struct sig_leg

#include <regex.h>
#include <sys/queue.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/sdp.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_wait.h>

#include "signaling/signaling.h"

/* What the focus supports, in one place: nua's defaults, OPTIONS. */
#define SIG_ALLOW	 "INVITE, ACK, BYE, CANCEL, OPTIONS, SUBSCRIBE, NOTIFY, REFER"
#define SIG_ALLOW_EVENTS "conference, dialog, refer"
#define SIG_ACCEPT	 "application/sdp"
#define SIG_SUPPORTED	 "replaces, join, norefersub"

#define SIG_STOP_TIMEOUT_MS 5000

enum sig_leg_state {
	SIG_LEG_DIALING_IN = 0, /* answered, waiting for ACK */
	SIG_LEG_CONNECTED,
	SIG_LEG_ON_HOLD,
	SIG_LEG_DISCONNECTING,
	SIG_LEG_DIALING_OUT,
	/* our INVITE is out */ SIG_LEG_ALERTING, /* it rings */
	SIG_LEG_PENDING, /* 180 sent, waiting to be admitted */
};

/* The media a leg negotiated, from the offer/answer exchange. */
struct sig_media {
	enum mix_codec codec;
	uint8_t pt;
	sdp_mode_t peer_mode; /* the direction the peer offered/answered */
	struct in_addr addr;  /* peer's RTP address (0.0.0.0: hold) */
	uint16_t port;	      /* peer's RTP port, host order */
	uint8_t te_pt;	      /* RFC 4733 telephone-event, if offered */
	bool have_te;
	/* Opus (RFC 7587) fmtp of the peer: useinbandfec, usedtx,
	 * maxplaybackrate (0: none), maxaveragebitrate (0: none). */
	bool opus_fec;
	bool opus_dtx;
	unsigned opus_maxrate;
	unsigned opus_bitrate;
	/* ms a packet we send: the peer's a=ptime (and a=maxptime), made
	 * one the codec can send (mix_ptime_valid); 20 if it says none. */
	unsigned ptime;
	/* RFC 6464 audio level: the peer's extmap ID for it (0: none). */
	uint8_t level_id;
	/* The offer's other m-lines, rejected (port 0), before and after
	 * the one we took: an answer keeps the offer's m-line order. */
	char rejected_before[1024];
	char rejected_after[1024];
};

struct sig_conf {
	TAILQ_ENTRY(sig_conf) link;
	struct sig *s;
	char *id;
	char *uri;
	char *owner;	      /* AOR of the creator, RFC 4579 4.11's owner */
	uint64_t empty_until; /* fc_now_ns() when, if still empty, it goes */
	bool app;    /* an application lobby (RFC 4579 4.3), not a conference */
	bool manual; /* admission: callers wait (180) until admitted */
	unsigned worker;
	struct mix_conf *mc;
	TAILQ_HEAD(, sig_leg) legs;
	unsigned n_legs;
	TAILQ_HEAD(, sig_sub) subs; /* RFC 4575 subscribers */
	unsigned pending;	    /* media replies awaited */
	bool releasing; /* out of the table, freed when pending drops */
	uint64_t created;
	unsigned rate; /* Hz it mixes at */
};

struct sig_leg {
	TAILQ_ENTRY(sig_leg) link; /* in conf->legs, or s->dying */
	struct sig *s;
	struct sig_conf *conf; /* borrowed; NULL once released */
	nua_handle_t *nh;
	char *peer_uri;
	char *call_id;
	char *display;	/* the participant's display name, or NULL */
	char *contact;	/* its Contact URI: the endpoint entity */
	char *from_tag; /* the dialog's tags, as in the INVITE */
	char *to_tag;
	const char *joining;	   /* RFC 4575 joining-method */
	const char *disconnection; /* how it is leaving: NULL is departed */
	struct sig_refer *refer;   /* a REFER waiting for this dial-out */
	bool quiet;	  /* replaced (RFC 4579 4.9): leaves without a NOTIFY */
	bool reinviting;  /* our re-INVITE (a move) is out */
	bool moving;	  /* between the old worker's detach and the attach */
	bool media_dirty; /* media changed while moving: update after */
	bool focus_hold;  /* the focus holds it (urn:feature:HoldCall) */
	bool awaiting;	  /* manual admission: 180 sent, no 200 yet */
	bool muted;	  /* the NOC's: not mixed */
	bool deaf;	  /* the NOC's: hears nothing */
	int gain_db;	  /* the NOC's, on what it says */
	bool focus_hold_prev;  /* before the hold/retrieve re-INVITE */
	sdp_mode_t offer_mode; /* the direction of our offers */
	bool uas;      /* the participant called us (we chose the To tag) */
	bool answered; /* a 2xx went out or came in: dialog confirmed */
	uint64_t answered_at; /* when: seconds since the epoch */
	bool transferring;    /* our REFER (SingleStepTransfer) is out */
	/* RFC 4235: how the dialog ended (local-bye, remote-bye, cancelled,
	 * rejected, replaced, error, timeout; NULL: not known) and the
	 * final response's status when one ended it (else 0). */
	const char *dlg_event;
	unsigned dlg_code;
	/* The leg's own URI, sip:ID@DOMAIN;gr=TOKEN, is handed out in our
	 * Contact (GRUU-like, stable across moves): REFER and SUBSCRIBE
	 * sent to it address this dialog. */
	char token[20];
	char digits[66]; /* what a caller keyed in the lobby so far */
	unsigned n_digits;
	uint64_t joined; /* seconds since the epoch */
	enum sig_leg_state state;
	bool media_up; /* attached to worker and io */
	bool releasing;
	unsigned pending; /* media replies awaited */
	struct sig_media media;
	struct dp_ep ep;
	struct mix_leg *ml;
	struct mix_leg_params mp;
	uint64_t sdp_sess_id;
	unsigned sdp_version;
	char *last_sdp;	 /* the SDP we sent last */
	bool answer_due; /* our 2xx offered: the ACK must answer */
};

struct sig {
	struct sig_conf_opts opts;
	char *listen; /* "host:port" */
	char *domain; /* host[:port] of conference URIs */
	su_home_t home[1];
	su_root_t *root;
	nua_t *nua;
	struct dp *dp;		     /* borrowed */
	struct mix_worker **workers; /* borrowed */
	unsigned n_workers;
	unsigned *worker_legs; /* legs placed per worker */
	unsigned *worker_load; /* permille of the tick, as last reported */
	unsigned load_asked;   /* stats requests out */
	struct sig_fd *efd_watch;
	TAILQ_HEAD(, sig_conf) confs;
	TAILQ_HEAD(, sig_leg) dying;	/* released, awaiting media replies */
	TAILQ_HEAD(, sig_refer) refers; /* REFERs waiting on a dial-out */
	TAILQ_HEAD(, sig_sub) ending_subs; /* last NOTIFY not answered yet */
	bool shutting_down;
	bool nua_done;
	bool finishing;		 /* in sig_maybe_finish */
	struct auth_mod_t *auth; /* digest users, or NULL */
	char *realm;
	char **moderators; /* NULL-terminated usernames */
	regex_t id_pattern;
	bool have_id_pattern;
	su_timer_t *housekeeping;
	su_timer_t *stop_timer;
	struct sig_stats st;
};

/* conf.c */
struct sig_conf *sig_conf_find(struct sig *s, const char *id);
int sig_conf_create(struct sig_conf **cp, struct sig *s, const char *id,
		    const char *owner);
/* A lobby of the conference application: prompt and digits, no mix. */
int sig_conf_create_app(struct sig_conf **cp, struct sig *s, const char *id);
/* A digit from a leg in a lobby (the workers' event handler). */
void sig_app_digit(void *s, void *leg, char digit);

/* Are all workers above --max-load? New joins are refused then. */
bool sig_overloaded(const struct sig *s);
/* Release conferences left empty past their empty_until (once a second). */
void sig_conf_housekeeping(struct sig *s);
/* May an INVITE create conference id (auto-create on, pattern)? */
bool sig_conf_may_create(const struct sig *s, const char *id);
/* Take a conference that no leg joined down. */
void sig_conf_gc(struct sig_conf *c);
int sig_leg_create(struct sig_leg **lp, struct sig_conf *c, nua_handle_t *nh,
		   const struct sig_media *m, const sip_t *sip);
int sig_leg_media_update(struct sig_leg *l, const struct sig_media *m);
void sig_leg_release(struct sig_leg *l);
/* The leg whose dialog has this Call-ID and these two tags, in either
 * order (Join and Replaces name them from the other side); or NULL. */
struct sig_leg *sig_leg_by_dialog(struct sig *s, const char *call_id,
				  const char *tag1, const char *tag2);
/*
 * RFC 4579 4.10: move leg l to conference dst - media to dst's worker,
 * the roster of both, and a re-INVITE telling the participant its new
 * focus URI (isfocus Contact). 0, EALREADY, EAGAIN (dialog not set up),
 * EBUSY (leg going), or a media-plane errno.
 */
int sig_leg_move(struct sig_leg *l, struct sig_conf *dst);
/* A re-INVITE of l with our offer (l->offer_mode) and l's conference's
 * isfocus Contact; its answer comes to reinvite_answered (dialout.c). */
void sig_leg_reinvite(struct sig_leg *l);
/* Manual admission: answer a waiting caller with 200 (EALREADY if it
 * was not waiting). */
int sig_leg_admit(struct sig_leg *l);
/* Fill in our dialog tag from a request in the dialog (the ACK). */
void sig_leg_learn_tags(struct sig_leg *l, const sip_t *sip);
void sig_maybe_finish(struct sig *s);
void sig_conf_free_all(struct sig *s);
const char *sig_leg_state_name(enum sig_leg_state st);
void sig_leg_strings_free(struct sig_leg *l);
char *sig_unquote(const char *quoted);
char *sig_clean_text(const char *text);
char *sig_url_text(const url_t *url);
/* Our BYE on l's dialog; disconnection (RFC 4575 disconnection-method)
 * if not NULL. The leg is released when nua reports the dialog gone. */
void sig_leg_hangup(struct sig_leg *l, const char *disconnection);
/* How l's dialog ended, for the dialog event package; the first
 * reason given sticks. */
void sig_leg_ended_by(struct sig_leg *l, const char *event, unsigned code);
/* The leg's own URI (no brackets), and the isfocus Contact of its
 * dialog, which carries that URI. */
char *sig_leg_uri(su_home_t *home, const struct sig_leg *l);
char *sig_leg_contact(su_home_t *home, const struct sig_leg *l);
/*
 * The leg a request's URI names with ;gr=TOKEN: NULL without a gr
 * parameter (*named false) or when no leg has it (*named true).
 */
struct sig_leg *sig_request_leg(struct sig *s, const sip_t *sip, bool *named);
/* The leg's state changed: tell the conference's subscribers. */
void sig_leg_set_state(struct sig_leg *l, enum sig_leg_state st);

/* sdp.c */
int sig_sdp_offer_parse(struct sig_media *m, su_home_t *home, const char *body,
			size_t len, int *statusp, const char **phrasep);
char *sig_sdp_answer(su_home_t *home, const struct sig_leg *l);
char *sig_sdp_offer(su_home_t *home, const struct sig_leg *l);
char *sig_leg_sdp(su_home_t *home, struct sig_leg *l, bool offer);
const char *sig_sdp_mode_name(sdp_mode_t mode);
sdp_mode_t sig_sdp_mode_answer(sdp_mode_t offered);
/* The RTP clock rate of codec c (RFC 3551, RFC 7587). */
unsigned sig_codec_clock(enum mix_codec c);

/* auth.c */
const char *sig_uri_user(char *buf, size_t len, const char *uri);
/*
 * May the sender of sip `what` on conference c? It must authenticate by
 * SIP digest as c's owner, a moderator, or also_user (if not NULL). True
 * if so; otherwise the request has been answered (401 with a challenge,
 * or 403) and nh released.
 */
bool sig_auth_require(struct sig *s, nua_handle_t *nh, const sip_t *sip,
		      const struct sig_conf *c, const char *also_user,
		      const char *what);
/* The same for an act on two conferences: a moderator, or the owner of
 * both. */
bool sig_auth_require2(struct sig *s, nua_handle_t *nh, const sip_t *sip,
		       const struct sig_conf *c, const struct sig_conf *c2,
		       const char *what);

/* sig.c: nua handles shared by legs, subscriptions and REFERs */
bool sig_handle_in_use(struct sig *s, nua_handle_t *nh);
/* The caller no longer uses nh (its pointer is cleared already):
 * destroy it if nothing else does. */
void sig_handle_release(struct sig *s, nua_handle_t *nh);
/* Answer the request being reported with status (extra tags as given),
 * then release nh. */
void sig_reject(struct sig *s, nua_handle_t *nh, int status, const char *phrase,
		tag_type_t tag, tag_value_t value, ...);

/* call.c */
bool sig_conf_id_valid(const struct sig *s, const char *id);
bool sig_same_aor(const char *a, const char *b);
void sig_random_id(char *buf, size_t len, const char *prefix);
void sig_call_event(struct sig *s, nua_event_t event, int status,
		    const char *phrase, nua_handle_t *nh, struct sig_leg *l,
		    const sip_t *sip, tagi_t tags[]);
void sig_options(struct sig *s, nua_handle_t *nh, struct sig_leg *l,
		 const sip_t *sip);
char *sig_contact(su_home_t *home, const struct sig *s, const char *id);
char *sig_from_aor(const sip_t *sip);

/* call.c */
enum sig_leg_state sig_state_for(const struct sig_media *m);

/* dialout.c: RFC 4579 4.2 */
struct sig_refer;
/*
 * Dial target (a sip: or sips: URI) out into conference c. refer, if
 * given, hears of the progress (sig_refer_progress). Returns 0 or an
 * errno: EINVAL (target), EADDRINUSE (no RTP port), ENOMEM.
 */
int sig_dialout(struct sig_leg **lp, struct sig_conf *c, const char *target,
		struct sig_refer *refer);
void sig_dialout_event(struct sig *s, nua_event_t event, int status,
		       const char *phrase, struct sig_leg *l, const sip_t *sip);

/* refer.c: RFC 4579 4.6 and 4.11 */
void sig_refer_event(struct sig *s, nua_handle_t *nh, struct sig_leg *l,
		     const sip_t *sip, tagi_t tags[]);
/* A dial-out made for a REFER got status (final when >= 200). */
void sig_refer_progress(struct sig_refer *r, int status, const char *phrase);
bool sig_refer_owns(struct sig *s, nua_handle_t *nh);
/* The leg r waits on went before its final answer: 200 if that was
 * what r asked for (gone), else 487; r ends. */
void sig_refer_forget(struct sig *s, struct sig_refer *r, bool gone);
/* Is user (an authenticated digest username) a --moderators entry? */
bool sig_is_moderator(const struct sig *s, const char *user);
/* nua_r_refer and nua_i_notify of a transfer (SingleStepTransfer) we
 * asked leg l to make. */
void sig_refer_transfer_event(struct sig *s, nua_event_t event, int status,
			      const char *phrase, struct sig_leg *l,
			      const sip_t *sip, tagi_t tags[]);
/* nua_r_notify on a REFER's handle: true if it was one. */
bool sig_refer_notify_answered(struct sig *s, nua_handle_t *nh, int status,
			       tagi_t tags[]);
void sig_refer_free_all(struct sig *s);

/* confevent.c: the RFC 4575 conference event package */
struct sig_sub;
bool sig_confevent_event(struct sig *s, nua_event_t event, int status,
			 nua_handle_t *nh, struct sig_leg *l, const sip_t *sip,
			 tagi_t tags[]);
bool sig_confevent_owns(struct sig *s, nua_handle_t *nh);
/* Leg l joined or changed (disconnection NULL), or left (departed,
 * booted, failed): a partial NOTIFY to every subscriber of c. */
void sig_confevent_changed(struct sig_conf *c, struct sig_leg *l,
			   const char *disconnection);
/* The dialog package only: a leg that takes over another's roster
 * entry (Replaces) is a new dialog, and the old one ends, replaced. */
void sig_confevent_dialog_changed(struct sig_conf *c, struct sig_leg *l,
				  bool gone);
/* Leg l moved from old to dst (already in dst's roster). */
void sig_confevent_moved(struct sig_conf *old, struct sig_conf *dst,
			 struct sig_leg *l);
/* c is ending: last full NOTIFYs, subscriptions terminated. */
void sig_confevent_ended(struct sig_conf *c);
void sig_confevent_free_all(struct sig *s);
void sig_confevent_drop(struct sig_conf *c);

#endif

"""What a conference-event watcher sees: the NOTIFYs in a SIPp message
trace and the RFC 4575 conference-info documents they carry.

What it does:
- notifies() takes the NOTIFYs a SIPp scenario received (sipcheck's
  parsed trace), drops retransmissions (same Call-ID and CSeq),
  validates every document against tests/schemas/conference-info.xsd
  with xmllint and parses it with xml.etree.ElementTree into plain dicts
  (parse_doc(), below), so tests compare values instead of walking XML;
  package_notifies() does the same for any event package (dialoginfo.py
  uses it for RFC 4235's);
- check_headers(): the header checks every NOTIFY of the package (or of
  another one) must pass (Event, Content-Type, Subscription-State);
- subscribe_once(): one SUBSCRIBE from a plain UDP socket and its final
  response (confwatch.subscribe_once()), for the requests focusd must
  refuse (404, 489, 406), where a SIPp scenario would need one recv per
  possible status;
- watch(): starts tests/sipp/uac_subscribe_conf.xml in the background.

Design notes: every document a test receives is validated, not only the
ones it looks at, so a malformed partial cannot hide behind a check that
did not need it. xmllint runs once per document (a few ms each, a few
dozen per test), on a file in the test's temp dir, with --nonet: the
schema loads offline. A missing xmllint fails the test at once with a
clear message (it comes with libxml2-utils), instead of skipping checks.

Only the Python standard library is used, plus /usr/bin/xmllint.
"""

import os
import random
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

import confwatch
import sipcheck
from harness import check, fail

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "urn:ietf:params:xml:ns:conference-info"
CONFINFO_TYPE = "application/conference-info+xml"
SCHEMA = os.path.normpath(os.path.join(HERE, "..", "schemas",
                                       "conference-info.xsd"))

_Q = "{%s}" % NS


def xmllint_path(schema=SCHEMA):
    """Path of xmllint; fails the test when there is none, or when the
    schema documents are checked against is missing."""
    p = shutil.which("xmllint")
    check(p is not None, "xmllint not found on PATH (Debian: apt-get "
          "install libxml2-utils); every event document must be "
          "validated against %s" % schema)
    check(os.path.exists(schema), "schema %s is missing" % schema)
    return p


_validated = {}


def validate(text, workdir, what, schema=SCHEMA, kind="conference-info"):
    """Validate one document (text) against schema (by default RFC 4575's;
    dialoginfo passes RFC 4235's); fails with xmllint's report and the
    document. A document validated once is not checked again."""
    key = (hash(text), schema)
    if _validated.get(key) == text:
        return
    xmllint = xmllint_path(schema)
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "%s-%d-%06d.xml"
                        % (kind, os.getpid(), random.randrange(10 ** 6)))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        r = subprocess.run([xmllint, "--noout", "--nonet", "--schema",
                            schema, path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
    except subprocess.TimeoutExpired:
        fail("%s: xmllint did not finish within 20 s" % what)
    out = r.stdout.decode("utf-8", "replace")
    check(r.returncode == 0, "%s: the %s document does not "
          "validate against %s (xmllint exit %d):\n%s\n----- document:\n%s"
          % (what, kind, schema, r.returncode, out.strip(), text))
    os.unlink(path)
    _validated[key] = text


# ---------------------------------------------------------------- documents

def _text(el, name):
    c = el.find(_Q + name) if el is not None else None
    return c.text.strip() if c is not None and c.text is not None else None


def _media(m):
    return {"id": m.get("id"), "type": _text(m, "type"),
            "status": _text(m, "status"), "src_id": _text(m, "src-id")}


def _endpoint(e):
    ci = e.find(_Q + "call-info")
    sip = ci.find(_Q + "sip") if ci is not None else None
    call = None
    if sip is not None:
        call = {"call_id": _text(sip, "call-id"),
                "from_tag": _text(sip, "from-tag"),
                "to_tag": _text(sip, "to-tag")}
    disc = e.find(_Q + "disconnection-info")
    return {"entity": e.get("entity"), "state": e.get("state", "full"),
            "status": _text(e, "status"),
            "joining_method": _text(e, "joining-method"),
            "disconnection_method": _text(e, "disconnection-method"),
            "disconnection_when": _text(disc, "when"),
            "media": [_media(m) for m in e.findall(_Q + "media")],
            "call_info": call, "has_call_info": ci is not None}


def _user(u):
    roles = u.find(_Q + "roles")
    return {"entity": u.get("entity"), "state": u.get("state", "full"),
            "display": _text(u, "display-text"),
            "roles": [r.text for r in roles.findall(_Q + "entry")]
            if roles is not None else [],
            "endpoints": [_endpoint(e) for e in u.findall(_Q + "endpoint")]}


def xml_root(text, what, ns, name):
    """The root element of a document; fails unless text is XML whose
    root is {ns}name."""
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as e:
        fail("%s: the body is not XML (%s):\n%s" % (what, e, text))
    check(root.tag == "{%s}%s" % (ns, name), "%s: root element is %s, "
          "expected {%s}%s" % (what, root.tag, ns, name))
    return root


def parse_doc(text, what):
    """A conference-info document as a dict:
    {entity, state, version (int or None), conf_uris [uri], user_count
     (int or None), active (bool or None), users_state, users [user]},
    user: {entity, state, display, roles, endpoints [endpoint]},
    endpoint: {entity, state, status, joining_method,
     disconnection_method, disconnection_when, media [{id, type, status,
     src_id}], call_info {call_id, from_tag, to_tag} or None}."""
    root = xml_root(text, what, NS, "conference-info")
    v = root.get("version")
    desc = root.find(_Q + "conference-description")
    uris = []
    if desc is not None:
        cu = desc.find(_Q + "conf-uris")
        if cu is not None:
            uris = [_text(e, "uri") for e in cu.findall(_Q + "entry")]
    st = root.find(_Q + "conference-state")
    uc = _text(st, "user-count")
    active = _text(st, "active")
    users = root.find(_Q + "users")
    return {
        "entity": root.get("entity"),
        "state": root.get("state", "full"),
        "version": int(v) if v is not None and v.isdigit() else None,
        "conf_uris": uris,
        "has_state": st is not None,
        "user_count": int(uc) if uc is not None and uc.isdigit() else None,
        "active": None if active is None else active in ("true", "1"),
        "users_state": users.get("state", "full") if users is not None
        else None,
        "users": [_user(u) for u in users.findall(_Q + "user")]
        if users is not None else [],
    }


def user_named(doc, name):
    """The user whose entity's user part is name (sip:NAME@...), or
    None."""
    for u in doc["users"]:
        m = re.match(r"sips?:([^@;>]+)@", u["entity"] or "")
        if m and m.group(1) == name:
            return u
    return None


def user_names(doc):
    out = []
    for u in doc["users"]:
        m = re.match(r"sips?:([^@;>]+)@", u["entity"] or "")
        out.append(m.group(1) if m else u["entity"])
    return out


def summary(doc):
    """One line: version, state, user-count, active, each user's state,
    status and media status."""
    if doc is None:
        return "(no document)"
    parts = []
    for u in doc["users"]:
        ep = u["endpoints"][0] if u["endpoints"] else {}
        med = ep.get("media") or [{}]
        parts.append("%s[%s %s %s%s]" % (
            user_names({"users": [u]})[0], u["state"], ep.get("status"),
            med[0].get("status"),
            " " + ep["disconnection_method"]
            if ep.get("disconnection_method") else ""))
    return "v%s %s users=%s active=%s %s" % (
        doc["version"], doc["state"], doc["user_count"], doc["active"],
        " ".join(parts))


# ---------------------------------------------------------------- NOTIFYs

class Notify:
    """One NOTIFY received (retransmissions dropped): msg (sipcheck.SipMsg),
    cseq (int), substate ('active', 'terminated', ...), reason, doc (parsed
    document or None when the body is empty)."""

    summary = staticmethod(summary)     # of the package's documents

    def __init__(self, msg, doc):
        self.msg = msg
        self.doc = doc
        cs = sipcheck.header1(msg, "CSeq").split()
        self.cseq = int(cs[0]) if cs and cs[0].isdigit() else None
        ss = sipcheck.header(msg, "Subscription-State")
        self.substate_raw = ss[0] if ss else None
        self.substate = (ss[0].split(";")[0].strip().lower() if ss else None)
        m = re.search(r";\s*reason=([^;\s]+)", ss[0]) if ss else None
        self.reason = m.group(1).lower() if m else None

    def describe(self):
        return "NOTIFY CSeq %s [%s] %s" % (self.cseq, self.substate_raw,
                                          self.summary(self.doc))


def event_names(msg):
    """The packages a message's Event headers name, lower case."""
    ev = sipcheck.header(msg, "Event") + sipcheck.header(msg, "o")
    return [e.split(";")[0].strip().lower() for e in ev]


def package_notifies(msgs, workdir, who, read, cls=Notify, event=None,
                     content_type=None):
    """The NOTIFYs received among msgs (SipMsgs: a parsed SIPp trace, or
    confwatch.ConfWatcher.notifies()), in order, without retransmissions
    (same Call-ID and CSeq; their bodies must match). event: only those
    whose Event names that package; content_type: what every body must
    be. read(body, workdir, what) validates and parses a body. Returns
    [cls(msg, doc)], doc None for an empty body."""
    out = []
    seen = {}
    for m in msgs:
        if m.direction != "received" or sipcheck.method(m) != "NOTIFY":
            continue
        if event is not None and event not in event_names(m):
            continue
        cs = sipcheck.header(m, "CSeq")
        key = (tuple(sipcheck.header(m, "Call-ID")), cs[0] if cs else None)
        if key in seen:
            check(seen[key] == m.body, "%s: two NOTIFYs with CSeq %s and "
                  "different bodies:\n%s\n-----\n%s"
                  % (who, key[1], seen[key], m.body))
            continue
        seen[key] = m.body
        doc = None
        if m.body.strip():
            what = "%s: NOTIFY CSeq %s" % (who, key[1])
            if content_type is not None:
                ct = sipcheck.header(m, "Content-Type")
                check(len(ct) == 1 and ct[0].split(";")[0].strip().lower()
                      == content_type, "%s: Content-Type is %r, expected "
                      "%s\n%s" % (what, ct, content_type, m.raw))
            doc = read(m.body, workdir, what)
        out.append(cls(m, doc))
    return out


def _read(body, workdir, what):
    validate(body, workdir, what)
    return parse_doc(body, what)


def notifies(msgs, workdir, who):
    """The NOTIFYs received in a parsed SIPp trace, in order, without
    retransmissions; every body is validated and parsed."""
    return package_notifies(msgs, workdir, who, _read)


def check_headers(n, who, active, event="conference",
                  content_type=CONFINFO_TYPE):
    """Event: event (conference), Content-Type content_type (a body is
    required), Subscription-State active or terminated."""
    m = n.msg
    ev = event_names(m)
    check(ev == [event], "%s: %s: Event is %r, expected %r\n%s"
          % (who, n.describe(), ev, event, m.raw))
    ct = sipcheck.header(m, "Content-Type")
    check(len(ct) == 1 and ct[0].split(";")[0].strip().lower()
          == content_type, "%s: %s: Content-Type is %r, expected %s"
          % (who, n.describe(), ct, content_type))
    check(n.doc is not None, "%s: %s has no body" % (who, n.describe()))
    want = "active" if active else "terminated"
    check(n.substate == want, "%s: %s: Subscription-State is %r, expected "
          "%s" % (who, n.describe(), n.substate_raw, want))


def dump(ns):
    return "\n".join("  " + n.describe() for n in ns)


# ---------------------------------------------------------------- SUBSCRIBE

def subscribe_once(fd, user, event="conference", accept=CONFINFO_TYPE,
                   expires=60, timeout=4.0, name="probe"):
    """Send one out-of-dialog SUBSCRIBE sip:user@focusd from a UDP socket
    of our own and return its final response (sipcheck.SipMsg);
    retransmits at T1, 2*T1, ... (RFC 3261 17.1.2.2). accept None: no
    Accept header. (confwatch.subscribe_once(), without lingering.)"""
    return confwatch.subscribe_once(
        fd, "sip:%s@%s" % (user, fd.sip_target), event=event,
        accept=accept, expires=expires, timeout=timeout, name=name)[0]


# ---------------------------------------------------------------- watcher

def watch(fd, room, name, expires=300, idle_ms=3000, duration_ms=15000,
          refresh_ms=0, timeout=25):
    """Start uac_subscribe_conf.xml for room in the background; returns
    the harness.SippRun."""
    return sipcheck.run_sipp(
        fd, "uac_subscribe_conf.xml", name, service=room,
        keys={"expires": expires, "idle_ms": idle_ms,
              "duration_ms": duration_ms, "refresh_ms": refresh_ms},
        sets={"from_user": name}, background=True, timeout=timeout)


def received(run, workdir, who):
    """The NOTIFYs a running (or finished) SippRun has received so far."""
    return notifies(sipcheck.trace_of(run), workdir, who)


def wait_notifies(run, count, timeout, workdir, who):
    """Poll until run has received count NOTIFYs; returns them. Fails if
    SIPp exits first or time runs out, with what came."""
    deadline = time.monotonic() + timeout
    while True:
        ns = received(run, workdir, who)
        if len(ns) >= count:
            return ns
        if run.poll() is not None:
            time.sleep(0.05)
            ns = received(run, workdir, who)
            if len(ns) >= count:
                return ns
            fail("%s: SIPp exited with %s after %d NOTIFYs, expected at "
                 "least %d:\n%s\n%s" % (who, run.poll(), len(ns), count,
                                        dump(ns), run.report()))
        if time.monotonic() >= deadline:
            fail("%s: %d NOTIFYs within %.1f s, expected at least %d:\n%s"
                 % (who, len(ns), timeout, count, dump(ns)))
        time.sleep(0.02)

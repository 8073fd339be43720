"""What a dialog-event watcher sees: the NOTIFYs (Event: dialog) in a
SIPp or ConfWatcher trace and the RFC 4235 dialog-info documents they
carry.

What it does:
- notifies() takes the NOTIFYs received (sipcheck's parsed SIPp trace, or
  ConfWatcher.notifies()), keeps those with Event: dialog, drops
  retransmissions (same Call-ID and CSeq), checks the Content-Type of
  every body (application/dialog-info+xml), validates every document
  against tests/schemas/dialog-info.xsd with xmllint and parses it with
  xml.etree.ElementTree into plain dicts (parse_doc, below);
- check_headers(): Event, Content-Type, Subscription-State of one NOTIFY;
- check_versions(): the versions of one subscription's documents go up by
  exactly one from its first, full document (RFC 4235 4.1, 4.3);
- docs(): the parsed documents a ConfWatcher(event="dialog") has
  received so far.

Validation is confinfo.validate with this schema, and NOTIFYs are taken
and their headers checked by confinfo's package_notifies() and
check_headers() with this package's Event and type; like confinfo, every
document received is validated, not only the ones a test looks at, and
xmllint runs with --nonet on a file in the test's temp dir. Beyond the
schema, parse_doc() checks what the RFC says in prose and its schema
leaves as a string: a dialog's state is one of the FSM states of section
3.7.1, and a state event only comes with "terminated".

Only the Python standard library is used, plus /usr/bin/xmllint.
"""

import os
import re

import confinfo
import sipcheck
from harness import check

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "urn:ietf:params:xml:ns:dialog-info"
EVENT = "dialog"
DIALOGINFO_TYPE = "application/dialog-info+xml"
SCHEMA = os.path.normpath(os.path.join(HERE, "..", "schemas",
                                       "dialog-info.xsd"))
# RFC 4235 3.7.1: the dialog FSM's states, the values of <state>.
STATES = ("trying", "proceeding", "early", "confirmed", "terminated")

_Q = "{%s}" % NS


def schema_path():
    """SCHEMA; fails the test when xmllint or the schema is missing."""
    confinfo.xmllint_path(SCHEMA)
    return SCHEMA


def validate(text, workdir, what):
    """Validate one document (text) against the RFC 4235 schema; fails
    with xmllint's report and the document."""
    confinfo.validate(text, workdir, what, schema=SCHEMA, kind="dialog-info")


# ---------------------------------------------------------------- documents

def _int(s):
    s = s.strip() if s is not None else None
    return int(s) if s and s.isdigit() else None


def _text(el):
    return el.text.strip() if el is not None and el.text is not None \
        else None


def _participant(d, side, el):
    """local_/remote_ identity, display, target, params of el (None: the
    element is absent; params then {})."""
    ident = el.find(_Q + "identity") if el is not None else None
    tgt = el.find(_Q + "target") if el is not None else None
    d[side + "_identity"] = _text(ident)
    d[side + "_display"] = ident.get("display") if ident is not None \
        else None
    d[side + "_target"] = tgt.get("uri") if tgt is not None else None
    params = {}
    if tgt is not None:
        for p in tgt.findall(_Q + "param"):
            params[p.get("pname")] = p.get("pval")
    d[side + "_params"] = params


def _dialog(el, what):
    st = el.find(_Q + "state")
    state = _text(st)
    did = el.get("id")
    check(state in STATES, "%s: dialog %s: state %r is none of %s (RFC 4235 "
          "3.7.1)" % (what, did, state, ", ".join(STATES)))
    event = st.get("event")
    check(event is None or state == "terminated", "%s: dialog %s: state "
          "event %r with state %r; an event says why a dialog was "
          "terminated (RFC 4235 4.1.2)" % (what, did, event, state))
    rep = el.find(_Q + "replaces")
    d = {
        "id": did,
        "call_id": el.get("call-id"),
        "local_tag": el.get("local-tag"),
        "remote_tag": el.get("remote-tag"),
        "direction": el.get("direction"),
        "state": state,
        "event": event,
        "code": _int(st.get("code")),
        "duration": _int(_text(el.find(_Q + "duration"))),
        "replaces": None if rep is None else {
            "call_id": rep.get("call-id"), "local_tag": rep.get("local-tag"),
            "remote_tag": rep.get("remote-tag")},
        "referred_by": _text(el.find(_Q + "referred-by")),
    }
    _participant(d, "local", el.find(_Q + "local"))
    _participant(d, "remote", el.find(_Q + "remote"))
    return d


def parse_doc(text, what):
    """A dialog-info document as a dict:
    {version (int), state ('full'|'partial'), entity, dialogs [dialog]},
    dialog: {id, call_id, local_tag, remote_tag, direction, state, event,
     code (int or None), duration (int or None), replaces ({call_id,
     local_tag, remote_tag} or None), referred_by, local_identity,
     local_display, local_target, local_params {pname: pval},
     remote_identity, remote_display, remote_target, remote_params}.
    An attribute or element that is absent is None (params: {})."""
    root = confinfo.xml_root(text, what, NS, "dialog-info")
    v = _int(root.get("version"))
    check(v is not None, "%s: dialog-info version %r is not a number"
          % (what, root.get("version")))
    return {
        "version": v,
        "state": root.get("state"),
        "entity": root.get("entity"),
        "dialogs": [_dialog(d, what) for d in root.findall(_Q + "dialog")],
    }


def dialog_by_call_id(doc, call_id):
    """The (first) dialog of doc with that call-id attribute, or None."""
    for d in doc["dialogs"] if doc is not None else []:
        if d["call_id"] == call_id:
            return d
    return None


def dialog_by_id(doc, did):
    """The dialog of doc with that id attribute, or None."""
    for d in doc["dialogs"] if doc is not None else []:
        if d["id"] == did:
            return d
    return None


def _user(uri):
    m = re.match(r"sips?:([^@;>]+)@", uri or "")
    return m.group(1) if m else (uri or "-")


def summary(doc):
    """One line: version, state, entity, and per dialog its id, the
    remote user, its state (with event and code) and duration."""
    if doc is None:
        return "(no document)"
    parts = []
    for d in doc["dialogs"]:
        st = d["state"]
        if d["event"]:
            st += "/" + d["event"]
        if d["code"] is not None:
            st += "/%d" % d["code"]
        parts.append("%s[%s %s%s]" % (
            d["id"], _user(d["remote_identity"]), st,
            "" if d["duration"] is None else " %ds" % d["duration"]))
    return "v%s %s %s %s" % (doc["version"], doc["state"], doc["entity"],
                             " ".join(parts) if parts else "(no dialogs)")


# ---------------------------------------------------------------- NOTIFYs

class Notify(confinfo.Notify):
    """One NOTIFY (Event: dialog) received, retransmissions dropped: msg,
    cseq, substate, reason as confinfo.Notify; doc is a parse_doc() dict,
    or None when the body is empty."""

    summary = staticmethod(summary)


def _read(body, workdir, what):
    validate(body, workdir, what)
    return parse_doc(body, what)


def notifies(msgs, workdir, who):
    """The NOTIFYs with Event: dialog among msgs (SipMsgs: a parsed SIPp
    trace or ConfWatcher.notifies()), received, in order, without
    retransmissions; every body must be application/dialog-info+xml and
    is validated and parsed."""
    return confinfo.package_notifies(msgs, workdir, who, _read, Notify,
                                     EVENT, DIALOGINFO_TYPE)


def check_headers(n, who, active):
    """Event: dialog, Content-Type application/dialog-info+xml (a body is
    required), Subscription-State active or terminated."""
    confinfo.check_headers(n, who, active, EVENT, DIALOGINFO_TYPE)


def check_versions(ns, who, first_full=True):
    """ns: one subscription's NOTIFYs (Notify) or documents (dicts), in
    the order received. From the first full document on, each version is
    the one before plus one (RFC 4235 4.1: incremented by one for each
    document sent to a subscriber). first_full: the first document must
    be that full one (RFC 6665 4.2.2: the first NOTIFY carries the whole
    state); without it, documents before it are not looked at. NOTIFYs
    without a body are skipped; all NOTIFYs must share one dialog (Call-ID
    and tags). Returns the versions checked."""
    docs, dialogs = [], set()
    for n in ns:
        if isinstance(n, dict):
            docs.append(n)
            continue
        m = n.msg
        dialogs.add((tuple(sipcheck.header(m, "Call-ID")),
                     sipcheck.tag_of(sipcheck.header1(m, "From")),
                     sipcheck.tag_of(sipcheck.header1(m, "To"))))
        if n.doc is not None:
            docs.append(n.doc)
    seq = "\n" + "\n".join("  " + summary(d) for d in docs)
    check(len(dialogs) <= 1, "%s: the NOTIFYs are from %d subscriptions "
          "(Call-ID, From tag, To tag): %r" % (who, len(dialogs),
                                               sorted(dialogs)))
    check(docs, "%s: no dialog-info document" % who)
    first = next((i for i, d in enumerate(docs) if d["state"] == "full"),
                 None)
    check(first is not None, "%s: no full document among:%s" % (who, seq))
    check(first == 0 or not first_full, "%s: the first document is %s, "
          "expected full:%s" % (who, docs[0]["state"], seq))
    prev = docs[first]["version"]
    versions = [prev]
    for d in docs[first + 1:]:
        check(d["version"] == prev + 1, "%s: version %s after %s, expected "
              "%s:%s" % (who, d["version"], prev, prev + 1, seq))
        prev = d["version"]
        versions.append(prev)
    return versions


dump = confinfo.dump          # the NOTIFYs, one line each


# ---------------------------------------------------------------- watchers

def received(watcher, workdir, who=None):
    """The dialog NOTIFYs (Notify) a confwatch.ConfWatcher has received so
    far; validated and parsed."""
    return notifies(watcher.notifies(), workdir, who or watcher.name)


def docs(watcher, workdir, who=None):
    """The dialog-info documents (parse_doc dicts) a confwatch.ConfWatcher
    has received so far, in order; NOTIFYs without a body are left out."""
    return [n.doc for n in received(watcher, workdir, who)
            if n.doc is not None]

//! Recorded and realistic bodies shared by the unit tests and the mutation
//! test. The first ones are verbatim from the fact sheet
//! (`shared/reference/presence-api-facts.md` A3–A9).

// ---- PIDF -----------------------------------------------------------------

/// Facts A5: Asterisk PIDF with the eyebeam supplement (verbatim).
pub const ASTERISK_EYEBEAM_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
          entity="sip:2001@pbx.example.com">
  <note>On the phone</note>
  <tuple id="2001">
    <status><basic>open</basic></status>
    <contact priority="1">sip:2001@pbx.example.com</contact>
  </tuple>
  <dm:person>
    <rpid:activities><rpid:on-the-phone/></rpid:activities>
  </dm:person>
</presence>
"#;

/// Asterisk PIDF for a Digium phone watcher: the extension tuple plus the
/// `digium-presence` tuple (facts A9; shape from
/// res_pjsip_pidf_digium_body_supplement.c: no `<basic>` in that tuple).
pub const ASTERISK_DIGIUM_DND_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:2001@pbx.example.com" xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid">
 <note>Ready</note>
 <tuple id="2001">
  <status>
   <basic>open</basic>
  </status>
  <contact priority="1">sip:2001@pbx.example.com</contact>
 </tuple>
 <tuple id="digium-presence">
  <status>
   <digium_presence type="dnd" subtype="meeting">In a meeting until 3</digium_presence>
  </status>
 </tuple>
</presence>
"#;

/// Asterisk with an UNAVAILABLE device: basic closed, note "Unavailable".
pub const ASTERISK_UNAVAILABLE_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:2002@pbx.example.com" xmlns="urn:ietf:params:xml:ns:pidf">
 <note>Unavailable</note>
 <tuple id="2002">
  <status>
   <basic>closed</basic>
  </status>
  <contact priority="1">sip:2002@pbx.example.com</contact>
 </tuple>
</presence>
"#;

/// Kamailio presence_xml aggregation of two publishers for one presentity
/// (a softphone that went offline an hour ago and a desk phone on a call):
/// tuples and persons are copied side by side into one document, each
/// keeping its own namespace declarations.
pub const KAMAILIO_MERGED_PIDF: &str = r#"<?xml version="1.0"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">
  <tuple xmlns="urn:ietf:params:xml:ns:pidf" id="t4a7c9e10">
    <status>
      <basic>closed</basic>
    </status>
    <contact priority="0.8">sip:alice@192.0.2.10:5060;transport=udp</contact>
    <timestamp>2026-01-01T09:00:00Z</timestamp>
  </tuple>
  <tuple xmlns="urn:ietf:params:xml:ns:pidf" id="sg89aep">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1">sip:alice@198.51.100.7:5061;transport=tls</contact>
    <note xml:lang="en">Online</note>
    <timestamp>2026-01-01T11:15:30.5+01:00</timestamp>
  </tuple>
  <dm:person xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" id="p2656">
    <rpid:activities>
      <rpid:on-the-phone/>
    </rpid:activities>
    <dm:note>On a call with a customer</dm:note>
    <dm:timestamp>2026-01-01T10:15:29Z</dm:timestamp>
  </dm:person>
</presence>
"#;

/// Kamailio passing through a Linphone-style publication: away with a note.
pub const KAMAILIO_LINPHONE_AWAY_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:bob@example.com">
  <tuple id="qmsnat">
    <status>
      <basic>open</basic>
    </status>
    <contact>sip:bob@192.0.2.44</contact>
    <timestamp>2026-03-10T08:30:00Z</timestamp>
  </tuple>
  <dm:person id="gqbrb">
    <rpid:activities>
      <rpid:away/>
    </rpid:activities>
    <dm:note>Back in 10 &amp; then lunch</dm:note>
  </dm:person>
</presence>
"#;

/// Kamailio pua_json shape (facts A5): busy with `other` = do-not-disturb.
pub const KAMAILIO_PUA_JSON_DND_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:c="urn:ietf:params:xml:ns:pidf:cipid" entity="sip:carol@example.com">
<tuple xmlns="urn:ietf:params:xml:ns:pidf" id="tuple_carol"><status><basic>open</basic></status></tuple>
<dm:person xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" id="1"><rpid:activities><rpid:busy/><rpid:other>Do Not Disturb</rpid:other></rpid:activities><dm:note>Focus time</dm:note></dm:person>
</presence>"#;

/// Only `<basic>closed</basic>`.
pub const CLOSED_ONLY_PIDF: &str = r#"<?xml version="1.0"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:dave@example.com"><tuple id="a"><status><basic>closed</basic></status></tuple></presence>"#;

/// Unusual prefixes, unknown extensions (mustUnderstand, cipid, a vendor
/// namespace), comments, a processing instruction, CDATA and a leading BOM.
pub const UNKNOWN_ELEMENTS_PIDF: &str = "\u{FEFF}<?xml version='1.0' encoding='windows-1252'?>\n\
<!-- published by some softphone -->\n\
<p:presence xmlns:p='urn:ietf:params:xml:ns:pidf' xmlns:x='urn:example:vendor' xmlns:pdm='urn:ietf:params:xml:ns:pidf:data-model' xmlns:r='urn:ietf:params:xml:ns:pidf:rpid' xmlns:ci='urn:ietf:params:xml:ns:pidf:cipid' entity='sip:erin@example.com' x:flavour='odd'>\n\
  <?vendor-pi keep-me?>\n\
  <x:capabilities><x:video enabled='true'/></x:capabilities>\n\
  <p:tuple id='t1' x:weird='1'>\n\
    <p:status><p:basic>open</p:basic><x:extra>whatever</x:extra></p:status>\n\
    <x:mustBeIgnored p:mustUnderstand='false'><x:deep><x:deeper/></x:deep></x:mustBeIgnored>\n\
    <p:note><![CDATA[Working from <home>]]></p:note>\n\
    <p:timestamp>2026-02-02T02:02:02.002Z</p:timestamp>\n\
  </p:tuple>\n\
  <pdm:person id='pp'>\n\
    <r:activities><r:unknown/><r:meeting from='2026-02-02T02:00:00Z'/><x:notAnActivity/></r:activities>\n\
    <r:user-input>idle</r:user-input>\n\
    <ci:display-name>Erin</ci:display-name>\n\
  </pdm:person>\n\
  <pdm:device id='d1'><pdm:deviceID>mac:0004f2000000</pdm:deviceID></pdm:device>\n\
</p:presence>\n";

/// Legacy eyeBeam / chan_sip shape: activities as `<ep:activity>` text in an
/// old person namespace.
pub const LEGACY_EYEBEAM_PIDF: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
xmlns:pp="urn:ietf:params:xml:ns:pidf:person"
xmlns:es="urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status"
xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person"
entity="sip:6001@pbx.example.com">
<pp:person><status>
<ep:activities><ep:activity>away</ep:activity></ep:activities>
</status></pp:person>
<note>Away</note>
<tuple id="6001">
<contact priority="1">sip:6001@pbx.example.com</contact>
<status><basic>open</basic></status>
</tuple>
</presence>
"#;

/// Person-only document (no tuple): availability comes from activities.
pub const PERSON_ONLY_PIDF: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:frank@example.com">
  <dm:person id="p"><rpid:activities><rpid:note>Annual leave</rpid:note><rpid:vacation until="2026-08-31T00:00:00Z"/></rpid:activities><dm:timestamp>2026-07-01T00:00:00-07:00</dm:timestamp></dm:person>
</presence>"#;

/// Asterisk res_pjsip_pidf with the eyeBeam supplement for a BUSY (or
/// ON HOLD) extension: `basic` closed, the state as activity *text*
/// (`ep:busy`) in the draft person namespace, the kind of busy only in the
/// note (presence_xml.c's fixed "On the phone", "On hold", "Ringing").
pub const ASTERISK_EYEBEAM_BUSY_CLOSED_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:2002@pbx.example.com" xmlns="urn:ietf:params:xml:ns:pidf" xmlns:pp="urn:ietf:params:xml:ns:pidf:person" xmlns:es="urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status" xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person">
 <note>On the phone</note>
 <tuple id="2002">
  <status>
   <basic>closed</basic>
  </status>
  <contact priority="1">sip:2002@pbx.example.com</contact>
 </tuple>
 <pp:person>
  <status>
   <ep:activities>ep:busy</ep:activities>
  </status>
 </pp:person>
</presence>
"#;

/// A Cisco phone's do-not-disturb: the draft RPID namespace for
/// `activities`, Cisco's for the token, no tuple at all.
pub const CISCO_DND_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:e="urn:ietf:params:xml:ns:pidf:status:rpid" xmlns:ce="urn:cisco:params:xml:ns:pidf:rpid" entity="sip:2003@cucm.example.com">
<dm:person><e:activities><ce:dnd/></e:activities></dm:person>
</presence>"#;

/// Cisco Unified CM line state as phones watch it: `basic` inside the
/// person and the tuple, the activity in both, a servcaps extension.
pub const CISCO_ON_THE_PHONE_PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:8001@192.0.2.198" xmlns:e="urn:ietf:params:xml:ns:pidf:status:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:ce="urn:cisco:params:xml:ns:pidf:rpid" xmlns:sc="urn:ietf:params:xml:ns:pidf:servcaps">
  <dm:person>
    <status>
      <basic>open</basic>
    </status>
    <e:activities>
      <e:on-the-phone/>
    </e:activities>
  </dm:person>
  <tuple id="cmp-8001-162">
    <status>
      <basic>open</basic>
      <e:activities>
        <e:on-the-phone/>
      </e:activities>
    </status>
    <sc:servcaps>
      <sc:audio>true</sc:audio>
    </sc:servcaps>
    <contact priority="0.8">sip:8001@192.0.2.198:5060</contact>
  </tuple>
</presence>"#;

/// Cisco presence server (CUP) rich presence: person and activities in the
/// Cisco namespace, Cisco's own `phone-status` and `im-status` values.
pub const CISCO_UPC_PIDF: &str = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:erin@example.com">
<person xmlns="urn:cisco:params:xml:ns:pidf:rpid" id="erin"><activities><available/><phone-status>unavailable</phone-status><im-status>available</im-status></activities></person>
<display-name xmlns="urn:ietf:params:xml:ns:pidf:cipid">Erin Example</display-name>
<tuple id="cisco-upc"><contact priority="0.6">sip:erin@example.com</contact><note xml:lang="en"/><status><basic>open</basic></status></tuple>
</presence>"#;

// ---- dialog-info ----------------------------------------------------------

/// Facts A6, verbatim: idle.
pub const DIALOG_IDLE: &str = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:2001@192.168.0.27">
  <dialog id="2001"><state>terminated</state></dialog>
</dialog-info>"#;

/// Facts A6, verbatim: ringing.
pub const DIALOG_RINGING: &str = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="5" state="full" entity="sip:2001@pbx.example.com">
  <dialog id="2001" direction="recipient">
    <remote><identity display="Alice">sip:3000@pbx.example.com</identity><target uri="sip:3000@pbx.example.com"/></remote>
    <local><identity>sip:2001@pbx.example.com</identity><target uri="sip:2001@pbx.example.com"/></local>
    <state>early</state>
  </dialog>
</dialog-info>"#;

/// Facts A6, verbatim: in call.
pub const DIALOG_IN_CALL: &str = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="6" state="full" entity="sip:2001@pbx.example.com">
  <dialog id="2001"><state>confirmed</state></dialog>
</dialog-info>"#;

/// Asterisk on hold: the `+sip.rendering` param written with `pvalue`.
pub const DIALOG_HOLD_PVALUE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="7" state="full" entity="sip:2001@pbx.example.com">
 <dialog id="2001" direction="recipient">
  <state>confirmed</state>
  <local>
   <target uri="sip:2001@pbx.example.com">
    <param pname="+sip.rendering" pvalue="no"/>
   </target>
  </local>
 </dialog>
</dialog-info>
"#;

/// RFC 4235 style partial update, prefixed, hold written with `pval`, an
/// outgoing early dialog beside it.
pub const DIALOG_PARTIAL_PVAL: &str = r#"<di:dialog-info xmlns:di="urn:ietf:params:xml:ns:dialog-info" version="8" state="partial" entity="sip:2001@pbx.example.com">
 <di:dialog id="d1" call-id="a84b4c76e66710@pc33" local-tag="1928301774" remote-tag="456" direction="initiator">
  <di:state event="remote-bye" code="200">confirmed</di:state>
  <di:local><di:target uri="sip:2001@192.0.2.5"><di:param pname="+sip.rendering" pval="no"/><di:param pname="isfocus" pval=""/></di:target></di:local>
  <di:remote><di:identity display="Bob &amp; Co">sip:bob@example.com</di:identity></di:remote>
 </di:dialog>
 <di:dialog id="d2" call-id="x@y" direction="initiator"><di:state>proceeding</di:state></di:dialog>
</di:dialog-info>"#;

// ---- RLS --------------------------------------------------------------------

/// Facts A3: the RLS NOTIFY Content-Type (verbatim).
pub const RLS_CONTENT_TYPE: &str =
    r#"multipart/related;type="application/rlmi+xml";start="<rlmi@hub>";boundary="b1""#;

/// Facts A3: the RLS NOTIFY body (verbatim, including the `…` placeholder
/// inside Alice's PIDF).
pub const RLS_BODY: &str = r#"--b1
Content-Transfer-Encoding: binary
Content-ID: <rlmi@hub>
Content-Type: application/rlmi+xml;charset="UTF-8"

<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:team-list@pres.example.com" version="3" fullState="false">
  <resource uri="sip:alice@example.com">
    <instance id="x7" state="active" cid="alice1@hub"/>
  </resource>
  <resource uri="sip:bob@example.com">
    <instance id="x8" state="terminated" reason="noresource"/>
  </resource>
</list>
--b1
Content-Transfer-Encoding: binary
Content-ID: <alice1@hub>
Content-Type: application/pidf+xml;charset="UTF-8"

<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">…</presence>
--b1--
"#;

/// A Kamailio-style full-state RLS NOTIFY (CRLF, no `start` parameter so
/// the first part is the root) with PIDF and dialog-info resources, a
/// pending one, one whose part is broken and one whose part is missing.
pub const KAMAILIO_RLS_CONTENT_TYPE: &str =
    "multipart/related;type=\"application/rlmi+xml\";boundary=\"abc123xyz\"";

/// Body for [`KAMAILIO_RLS_CONTENT_TYPE`].
pub const KAMAILIO_RLS_BODY: &str = "--abc123xyz\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <1zxcvb@pres.example.com>\r\n\
Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n\
\r\n\
<?xml version=\"1.0\"?>\n<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:buddies@example.com\" version=\"0\" fullState=\"true\"><name>Buddies</name><resource uri=\"sip:alice@example.com\"><name>Alice</name><instance id=\"a1\" state=\"active\" cid=\"alice@pres\"/></resource><resource uri=\"sip:2001@example.com\"><instance id=\"b1\" state=\"active\" cid=\"2001@pres\"/></resource><resource uri=\"sip:carol@example.com\"><instance id=\"c1\" state=\"pending\"/></resource><resource uri=\"sip:dave@example.com\"><instance id=\"d1\" state=\"active\" cid=\"dave@pres\"/></resource><resource uri=\"sip:erin@example.com\"><instance id=\"e1\" state=\"active\" cid=\"erin@pres\"/></resource><resource uri=\"sip:frank@example.com\"/></list>\r\n\
--abc123xyz\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <alice@pres>\r\n\
Content-Type: application/pidf+xml;charset=\"UTF-8\"\r\n\
\r\n\
<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:alice@example.com\"><tuple id=\"t1\"><status><basic>open</basic></status></tuple><dm:person id=\"p\"><rpid:activities><rpid:meeting/></rpid:activities></dm:person></presence>\r\n\
--abc123xyz\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <2001@pres>\r\n\
Content-Type: application/dialog-info+xml\r\n\
\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"12\" state=\"full\" entity=\"sip:2001@example.com\"><dialog id=\"x\" direction=\"recipient\"><state>early</state></dialog></dialog-info>\r\n\
--abc123xyz\r\n\
Content-ID: <dave@pres>\r\n\
Content-Type: application/pidf+xml\r\n\
\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:dave@example.com\"><tuple id=\"t\"><status><basic>open\r\n\
--abc123xyz--\r\n";

// ---- dialog / feature events ------------------------------------------------

/// Facts A9, verbatim: DoNotDisturbEvent.
pub const DND_EVENT: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<DoNotDisturbEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
  <device>2001</device>
  <doNotDisturbOn>true</doNotDisturbOn>
</DoNotDisturbEvent>
"#;

/// Facts A9, verbatim: ForwardingEvent.
pub const FORWARDING_EVENT: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<ForwardingEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
  <device>2001</device>
  <forwardingType>forwardImmediate</forwardingType>
  <forwardStatus>true</forwardStatus>
  <forwardTo>700</forwardTo>
  <ringCount>0</ringCount>
</ForwardingEvent>
"#;

/// Content-Type of [`DFKS_MULTIPART_BODY`].
pub const DFKS_MULTIPART_CONTENT_TYPE: &str = "multipart/mixed; boundary=boundary1";

/// Polycom/Yealink-style DFKS NOTIFY after SUBSCRIBE: the full feature state
/// as multipart/mixed (boundary name as in the FreeSWITCH example), one part
/// without the CSTA namespace as some PBX modules send it.
pub const DFKS_MULTIPART_BODY: &str = "--boundary1\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<DoNotDisturbEvent xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed3\"><device>2001</device><doNotDisturbOn>false</doNotDisturbOn></DoNotDisturbEvent>\r\n\
--boundary1\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<ForwardingEvent xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed3\"><device>2001</device><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardTo>700</forwardTo><ringCount>0</ringCount></ForwardingEvent>\r\n\
--boundary1\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<ForwardingEvent xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed3\"><device>2001</device><forwardingType>forwardBusy</forwardingType><forwardStatus>false</forwardStatus><forwardTo></forwardTo><ringCount></ringCount></ForwardingEvent>\r\n\
--boundary1\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<ForwardingEvent><device>2001</device><forwardingType>forwardNoAns</forwardingType><forwardStatus>true</forwardStatus><forwardTo>8000</forwardTo><ringCount>4</ringCount></ForwardingEvent>\r\n\
--boundary1--\r\n";

/// Content-Type of [`OPENSIPS_DFKS_BODY`] (presence_dfks' OSS_BOUNDARY).
pub const OPENSIPS_DFKS_CONTENT_TYPE: &str = "multipart/mixed;boundary=OSS-unique-boundary-42";

/// OpenSIPS presence_dfks full feature state: its CSTA namespace has no
/// hyphen in `ecmainternational` (DFKS_NS_STR in presence_dfks.h); DND on,
/// an immediate forward, and busy and no-answer forwards.
pub const OPENSIPS_DFKS_BODY: &str = "--OSS-unique-boundary-42\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<DoNotDisturbEvent xmlns=\"http://www.ecmainternational.org/standards/ecma-323/csta/ed3\">\n  <device>2001</device>\n  <doNotDisturbOn>true</doNotDisturbOn>\n</DoNotDisturbEvent>\n\r\n\
--OSS-unique-boundary-42\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<ForwardingEvent xmlns=\"http://www.ecmainternational.org/standards/ecma-323/csta/ed3\">\n  <device>2001</device>\n  <forwardingType>forwardImmediate</forwardingType>\n  <forwardStatus>true</forwardStatus>\n  <forwardTo>+15555550100</forwardTo>\n</ForwardingEvent>\n\r\n\
--OSS-unique-boundary-42\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<ForwardingEvent xmlns=\"http://www.ecmainternational.org/standards/ecma-323/csta/ed3\">\n  <device>2001</device>\n  <forwardingType>forwardBusy</forwardingType>\n  <forwardStatus>true</forwardStatus>\n  <forwardTo>+15555550101</forwardTo>\n</ForwardingEvent>\n\r\n\
--OSS-unique-boundary-42\r\n\
Content-Type: application/x-as-feature-event+xml\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<ForwardingEvent xmlns=\"http://www.ecmainternational.org/standards/ecma-323/csta/ed3\">\n  <device>2001</device>\n  <forwardingType>forwardNoAns</forwardingType>\n  <forwardStatus>true</forwardStatus>\n  <forwardTo>+15555550102</forwardTo>\n  <ringCount>3</ringCount>\n</ForwardingEvent>\n\r\n\
--OSS-unique-boundary-42--\r\n";

/// Every (content type, body) above, for the mutation test.
pub fn corpus() -> Vec<(&'static str, &'static str)> {
    const PIDF: &str = "application/pidf+xml";
    const DI: &str = "application/dialog-info+xml";
    const FE: &str = "application/x-as-feature-event+xml";
    vec![
        (PIDF, ASTERISK_EYEBEAM_PIDF),
        (PIDF, ASTERISK_DIGIUM_DND_PIDF),
        (PIDF, ASTERISK_UNAVAILABLE_PIDF),
        (PIDF, KAMAILIO_MERGED_PIDF),
        (PIDF, KAMAILIO_LINPHONE_AWAY_PIDF),
        (PIDF, KAMAILIO_PUA_JSON_DND_PIDF),
        (PIDF, CLOSED_ONLY_PIDF),
        (PIDF, UNKNOWN_ELEMENTS_PIDF),
        (PIDF, LEGACY_EYEBEAM_PIDF),
        (PIDF, PERSON_ONLY_PIDF),
        (PIDF, ASTERISK_EYEBEAM_BUSY_CLOSED_PIDF),
        (PIDF, CISCO_DND_PIDF),
        (PIDF, CISCO_ON_THE_PHONE_PIDF),
        (PIDF, CISCO_UPC_PIDF),
        (DI, DIALOG_IDLE),
        (DI, DIALOG_RINGING),
        (DI, DIALOG_IN_CALL),
        (DI, DIALOG_HOLD_PVALUE),
        (DI, DIALOG_PARTIAL_PVAL),
        (RLS_CONTENT_TYPE, RLS_BODY),
        (KAMAILIO_RLS_CONTENT_TYPE, KAMAILIO_RLS_BODY),
        (FE, DND_EVENT),
        (FE, FORWARDING_EVENT),
        (DFKS_MULTIPART_CONTENT_TYPE, DFKS_MULTIPART_BODY),
        (OPENSIPS_DFKS_CONTENT_TYPE, OPENSIPS_DFKS_BODY),
    ]
}

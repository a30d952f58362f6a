//! Inputs shaped like what deployed systems send (issue 22), personal
//! details replaced: the body tests and the core's tests read them.
//! `body/fixtures.rs` holds the older corpus (RFC examples, Kamailio).

/// Content-Type of a BroadWorks busy lamp field list NOTIFY (`Event:
/// dialog`, `Require: eventlist`): the RLMI root named by `start`.
pub const BLF_CONTENT_TYPE: &str = r#"multipart/related;type="application/rlmi+xml";start="<nXYxAE@as.example.com>";boundary="50UBfW7LSCVLtggUPe5z""#;

/// A BroadWorks BLF list, full state: the list `uri` left out, an idle
/// extension 4605 with an empty dialog-info, a ringing 4607 with an early
/// dialog from the recipient's side (as a Yealink or Polycom phone
/// watching the list receives it).
pub const BLF_FULL: &str = "--50UBfW7LSCVLtggUPe5z\r\n\
Content-Type: application/rlmi+xml\r\n\
Content-ID: <nXYxAE@as.example.com>\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" version=\"0\" fullState=\"true\">\
<resource uri=\"sip:4605@as.example.com\"><name>Reception</name>\
<instance id=\"kfS1ZwSxTk\" state=\"active\" cid=\"YbQSEx@as.example.com\"/></resource>\
<resource uri=\"sip:4607@as.example.com\"><name>Sales</name>\
<instance id=\"2ZGwtUhZFj\" state=\"active\" cid=\"bG2Sv6@as.example.com\"/></resource>\
</list>\r\n\
--50UBfW7LSCVLtggUPe5z\r\n\
Content-Type: application/dialog-info+xml\r\n\
Content-ID: <YbQSEx@as.example.com>\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" entity=\"sip:4605@as.example.com\"/>\r\n\
--50UBfW7LSCVLtggUPe5z\r\n\
Content-Type: application/dialog-info+xml\r\n\
Content-ID: <bG2Sv6@as.example.com>\r\n\
\r\n\
<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" entity=\"sip:4607@as.example.com\">\
<dialog id=\"Y2FsbGhhbGYtMTk3NjQ6MA==\" call-id=\"BW1723150610190420-1161437@192.0.2.20\" local-tag=\"1744370046-1723150610\" remote-tag=\"38ce9c44\" direction=\"recipient\">\
<state>early</state>\
<local><identity display=\"Sales\">sip:4607@as.example.com</identity><target uri=\"sip:4607@as.example.com\"/></local>\
<remote><identity display=\"Caller 4609\">sip:4609@as.example.com</identity><target uri=\"sip:4609@as.example.com\"/></remote>\
</dialog></dialog-info>\r\n\
--50UBfW7LSCVLtggUPe5z--\r\n";

/// The same list, partial state, version 1: 4607 answered (confirmed);
/// 4605 listed without `cid` (its state is not in this NOTIFY).
pub const BLF_PARTIAL: &str = "--50UBfW7LSCVLtggUPe5z\r\n\
Content-Type: application/rlmi+xml\r\n\
Content-ID: <nXYxAE@as.example.com>\r\n\
\r\n\
<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" version=\"1\" fullState=\"false\">\
<resource uri=\"sip:4605@as.example.com\"><instance id=\"kfS1ZwSxTk\" state=\"active\"/></resource>\
<resource uri=\"sip:4607@as.example.com\"><instance id=\"2ZGwtUhZFj\" state=\"active\" cid=\"c2@as.example.com\"/></resource>\
</list>\r\n\
--50UBfW7LSCVLtggUPe5z\r\n\
Content-Type: application/dialog-info+xml\r\n\
Content-ID: <c2@as.example.com>\r\n\
\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" state=\"full\" entity=\"sip:4607@as.example.com\">\
<dialog id=\"Y2FsbGhhbGYtMTk3NjQ6MA==\" direction=\"recipient\"><state>confirmed</state></dialog></dialog-info>\r\n\
--50UBfW7LSCVLtggUPe5z--\r\n";

/// Content-Type of [`BLF_NEIGHBOURS`]: no `start`, so the first part is
/// the root.
pub const BLF_NEIGHBOURS_CONTENT_TYPE: &str =
    "multipart/related;type=\"application/rlmi+xml\";boundary=\"nb\"";

/// The kind's neighbours in one list, full state: a Kamailio-style empty
/// part (nothing published for 4611: idle), a part that cannot be read
/// (4612), a dialog-info part for the wrong entity type (4613 sends
/// PIDF), a refused member (4614), one pending (4615), a resource with a
/// held call written as Asterisk does (4616), one whose resource URI
/// carries parameters and another host's case (4617, ringing as caller),
/// and one listed without any instance (4619: Kamailio's rls lists a member
/// so while its back-end NOTIFYs carry no body).
pub const BLF_NEIGHBOURS: &str = "--nb\r\n\
Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n\
Content-ID: <root@rls>\r\n\
\r\n\
<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"\" version=\"4\" fullState=\"true\">\
<resource uri=\"sip:4611@example.com\"><instance id=\"Scf8UhwQ\" state=\"active\" cid=\"p11@rls\"/></resource>\
<resource uri=\"sip:4612@example.com\"><instance id=\"Scf8UhwQ\" state=\"active\" cid=\"p12@rls\"/></resource>\
<resource uri=\"sip:4613@example.com\"><instance id=\"Scf8UhwQ\" state=\"active\" cid=\"p13@rls\"/></resource>\
<resource uri=\"sip:4614@example.com\"><instance id=\"i14\" state=\"terminated\" reason=\"rejected\"/></resource>\
<resource uri=\"sip:4615@example.com\"><instance id=\"i15\" state=\"pending\"/></resource>\
<resource uri=\"sip:4616@example.com\"><instance id=\"i16\" state=\"active\" cid=\"p16@rls\"/></resource>\
<resource uri=\"sip:4617@EXAMPLE.com;user=phone\"><instance id=\"i17\" state=\"active\" cid=\"p17@rls\"/></resource>\
<resource uri=\"sip:4619@example.com\"/>\
</list>\r\n\
--nb\r\n\
Content-Transfer-Encoding: binary\r\n\
Content-ID: <p11@rls>\r\n\
Content-Type: application/dialog-info+xml\r\n\
\r\n\
\r\n\
\r\n\
--nb\r\n\
Content-ID: <p12@rls>\r\n\
Content-Type: application/dialog-info+xml\r\n\
\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"2\" state=\"full\"><dialog id=\"1\"><state>ringing</state></dialog></dialog-info>\r\n\
--nb\r\n\
Content-ID: <p13@rls>\r\n\
Content-Type: application/pidf+xml\r\n\
\r\n\
<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:4613@example.com\"/>\r\n\
--nb\r\n\
Content-ID: <p16@rls>\r\n\
Content-Type: application/dialog-info+xml\r\n\
\r\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"9\" state=\"full\" entity=\"sip:4616@example.com\">\
<dialog id=\"4616\" direction=\"initiator\"><state>confirmed</state>\
<local><target uri=\"sip:4616@example.com\"><param pname=\"+sip.rendering\" pvalue=\"no\"/></target></local>\
</dialog></dialog-info>\r\n\
--nb\r\n\
Content-ID: <p17@rls>\r\n\
Content-Type: application/dialog-info+xml;charset=UTF-8\r\n\
\r\n\
<d:dialog-info xmlns:d=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\" state=\"partial\" entity=\"sip:4617@example.com\">\
<d:dialog id=\"a\" direction=\"initiator\"><d:state>Trying</d:state></d:dialog></d:dialog-info>\r\n\
--nb--\r\n";

//! SIP messages for the parser's tests: the header-grammar cases of the
//! RFC 4475 torture tests (valid ones from §3.1.1, invalid ones from
//! §3.1.2 and §3.3), rewritten from the RFC text with people's names
//! replaced, plus what presence servers send.
//!
//! The texts are written with `\n` line ends; [`wire`] turns them into what
//! arrives (CRLF, `$LEN` replaced by the body length).

/// A fixture as sent: CRLF line ends and a correct Content-Length wherever
/// the text says `$LEN`.
pub fn wire(text: &str) -> Vec<u8> {
    let text = text.replace('\n', "\r\n");
    let body_len = text.find("\r\n\r\n").map_or(0, |i| text.len() - (i + 4));
    text.replace("$LEN", &body_len.to_string()).into_bytes()
}

const SDP: &str = "v=0
o=user 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
";

/// The NOTIFY of issue 22: one folded Subject line.
pub const FOLDED_SUBJECT_NOTIFY: &str = r#"NOTIFY sip:hub@192.0.2.10:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK-fold-1
From: <sip:alice@example.com>;tag=srv1
To: <sip:hub@example.com>;tag=hub1
Call-ID: fold-1@192.0.2.20
CSeq: 7 NOTIFY
Event: presence
Subscription-State: active;expires=600
Subject: a long subject that
 continues on a second line
Content-Type: application/pidf+xml
Content-Length: $LEN

<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com"><tuple id="t"><status><basic>open</basic></status></tuple></presence>"#;

/// Its neighbours: every field this hub reads folded, in odd case, compact,
/// with leading zeros and whitespace around the colon.
pub const FOLDED_EVERYWHERE_NOTIFY: &str = "NOTIFY sip:hub@192.0.2.10 SIP/2.0
v : SIP / 2.0 / UDP
 192.0.2.20:5060
   ;branch=z9hG4bK-fold-2 ,
 SIP/2.0/TCP 192.0.2.30;branch=z9hG4bK-second
F:
\t<sip:alice@example.com>
 ;tag=srv2
T\t: <sip:hub@example.com>;
 tag=hub2
I:fold-2@192.0.2.20
cSeQ: 000000012
  NOTIFY
o: presence
 ;id=abc
sUBSCRIPTION-sTATE: active;
 expires=
   0600
EXPIRES: 0000300
Min-Expires:   00060
X-Empty:
X-Odd-Value: ;;,,;;,; <> \"\" ==
c: application/pidf+xml
l:
 00000000$LEN

body";

/// RFC 4475 §3.1.1.1 (wsinv): LWS and folding everywhere, names in mixed
/// case, whitespace before colons, an empty Subject, unknown fields.
pub fn wsinv() -> Vec<u8> {
    wire(&format!(
        "INVITE sip:bob@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:bob@chair-dnrc.example.com ;   tag    = 1918181833n
from   : \"A Person \\\\\\\"\"       <sip:alice@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : $LEN
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:\"Quoted string \\\"\\\"\" <sip:alice@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

{SDP}"
    ))
}

/// RFC 4475 §3.1.1.2 (intmeth): every token character in a method, the
/// Request-URI and parameters; control characters escaped in a quoted
/// display name; UTF-8 in values.
pub fn intmeth() -> Vec<u8> {
    wire(
        "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: \"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}\";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~: \u{5927}\u{505C}\u{96FB}
Content-Length: 0

",
    )
}

/// RFC 4475 §3.1.1.3 (esc01): %-escapes in URIs, `C:` and `i:` compact.
pub fn esc01() -> Vec<u8> {
    wire(&format!(
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: $LEN

{SDP}"
    ))
}

/// RFC 4475 §3.1.1.4 (escnull): escaped NULs, `L:0` without a space.
pub const ESCNULL: &str = "REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

";

/// RFC 4475 §3.1.1.5 (esc02): `%` that is no escape, in a method and a
/// header name.
pub const ESC02: &str = "RE%47IST%45R sip:registrar.example.com SIP/2.0
To: \"%Z%45\" <sip:resource@example.com>
From: \"%Z%45\" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;rport;branch=z9hG4bK209823
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

";

/// RFC 4475 §3.1.1.6 (lwsdisp): no LWS between display name and `<`.
pub const LWSDISP: &str = "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

";

/// RFC 4475 §3.1.1.7 (longreq): long values, 34 Vias written with `Via`,
/// `v` and `V`, a long Record-Route list.
pub fn longreq() -> Vec<u8> {
    let extreme = "extreme".repeat(60);
    let really = "really".repeat(60);
    let mut text = format!(
        "INVITE sip:user@example.com SIP/2.0
To: \"I have a user name of {extreme} proportion\"<sip:user@example.com:6000;unknownparam1=very{extreme}longvalue;longparam{extreme}name=shortvalue;very{extreme}ParamNameWithNoValue>
F: sip:amazinglylongcallername{extreme}@example.net;tag=12{extreme}982;unknownheaderparam{extreme}name=unknowheaderparam{extreme}value;unknownValueless{extreme}paramname
Call-ID: longreq.one{really}longcallid
CSeq: 3882340 INVITE
Unknown-{extreme}-Header-Name: unknown-{extreme}-value; unknown-{extreme}-parameter-name = unknown-{extreme}-parameter-value
Record-Route: <sip:{}>
Max-Forwards: 70
Contact: <sip:amazinglylongcallername{extreme}@host5.example.net>
Content-Type: application/sdp
l: $LEN
",
        (1..=40)
            .map(|i| format!("{i}.example.com;lr"))
            .collect::<Vec<_>>()
            .join(">,<sip:")
    );
    for i in (1..=34).rev() {
        let name = ["Via", "v", "V"][i % 3];
        text.push_str(&format!(
            "{name}: SIP/2.0/TCP sip{i}.example.com;branch=z9hG4bK{i}{}\n",
            "x".repeat(i)
        ));
    }
    text.push('\n');
    text.push_str(SDP);
    wire(&text)
}

/// RFC 4475 §3.1.1.8 (dblreq): a second request after the first one's
/// Content-Length, in the same datagram; only the first counts.
pub const DBLREQ: &str = "REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0


INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

";

/// RFC 4475 §3.1.1.9 (semiuri): `;` in the user part; Accept folded after
/// its commas.
pub const SEMIURI: &str = "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

";

/// RFC 4475 §3.1.1.10 (transports): Vias with varied and unknown
/// transports; two spaces after `Call-ID:`.
pub const TRANSPORTS: &str = "OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

";

/// RFC 4475 §3.1.1.11 (mpart01): a multipart/signed MESSAGE whose
/// signature part is binary (every octet value).
pub fn mpart01() -> Vec<u8> {
    let head = "MESSAGE sip:carol@example.org SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKmpart01
Max-Forwards: 70
To: <sip:carol@example.org>
From: <sip:dave@example.com>;tag=cf3c2a07
Call-ID: mpart01.1298dsf2@192.0.2.1
CSeq: 1 MESSAGE
Content-Type: multipart/signed;protocol=\"application/pkcs7-signature\";micalg=sha1;boundary=\"----=_Part_1\"
Content-Length: $LEN

";
    let mut body = b"------=_Part_1\r\nContent-Type: text/plain\r\n\r\nhello\r\n------=_Part_1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    body.extend(0..=255u8);
    body.extend_from_slice(b"\r\n------=_Part_1--\r\n");
    let mut out = wire(&head.replace("$LEN", &body.len().to_string()));
    out.extend_from_slice(&body);
    out
}

/// RFC 4475 §3.1.1.12 (unreason): a reason phrase in UTF-8 with symbols.
pub fn unreason() -> Vec<u8> {
    wire(&format!(
        "SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{43d}\u{43e}\u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{442}\u{44c} - \u{43f}\u{440}\u{43e}\u{441}\u{442}\u{43e}\u{435}
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: $LEN
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>

{SDP}"
    ))
}

/// RFC 4475 §3.1.1.13 (noreason): an empty reason phrase.
pub const NOREASON: &str = "SIP/2.0 100\x20
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

";

/// Invalid requests (RFC 4475 §3.1.2, §3.3): name, text, and whether a 400
/// (rather than a 505) is owed. Each has a Via, so each is answered.
pub const INVALID_REQUESTS: &[(&str, &str, u16)] = &[
    // §3.1.2.2: Content-Length larger than the message.
    (
        "clerr",
        "INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999

v=0
o=user 29739 7272939 IN IP4 192.0.2.155
",
        400,
    ),
    // §3.1.2.3: negative Content-Length.
    (
        "ncl",
        "INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999

v=0
",
        400,
    ),
    // §3.1.2.4: overlarge scalar values (the CSeq decides here).
    (
        "scalar02",
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1000000000000000000000000000000000000000000000000
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0

",
        400,
    ),
    // §3.1.2.6: unterminated quoted string in a display name.
    (
        "quotbal",
        "INVITE sip:user@example.com SIP/2.0
To: \"Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
Content-Length: 0

",
        400,
    ),
    // §3.1.2.7: Request-URI enclosed in <>.
    (
        "ltgtruri",
        "INVITE <sip:user@example.com> SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: ltgtruri.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 0

",
        400,
    ),
    // §3.1.2.8: LWS inside the Request-URI.
    (
        "lwsruri",
        "INVITE sip:user@example.com; lr SIP/2.0
To: sip:user@example.com;tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395
Contact: <sip:caller@host1.example.net>
Content-Length: 0

",
        400,
    ),
    // §3.1.2.9: several spaces between the request line's elements.
    (
        "lwsstart",
        "INVITE  sip:user@example.com  SIP/2.0
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Contact: <sip:caller@host1.example.net>
Content-Length: 0

",
        400,
    ),
    // §3.1.2.10: whitespace after the SIP version.
    (
        "trws",
        "OPTIONS sip:remote-target@example.com SIP/2.0\x20\x20
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093
To: <sip:remote-target@example.com>
From: <sip:local-resource@example.com>;tag=329429089
Call-ID: trws.oicu34958239neffasdhr2345r
Accept: application/sdp
CSeq: 238923 OPTIONS
Max-Forwards: 70
Content-Length: 0

",
        400,
    ),
    // §3.1.2.14: a SIP version other than 2.0.
    (
        "badvers",
        "OPTIONS sip:user@example.org SIP/7.0
Via: SIP/7.0/UDP host5.example.com;branch=z9hG4bKkdjuw
To: <sip:user@example.org>
From: <sip:caller@example.com>;tag=242etr
Max-Forwards: 6
Call-ID: badvers.slk3jj3234kl
CSeq: 1 OPTIONS
Content-Length: 0

",
        505,
    ),
    // §3.1.2.15: CSeq method differs from the request method.
    (
        "mismatch01",
        "OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0

",
        400,
    ),
    // §3.1.2.16: the same with an unknown method.
    (
        "mismatch02",
        "NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
Content-Type: application/sdp
l: 0

",
        400,
    ),
    // §3.3.1: required header fields missing.
    (
        "insuf",
        "INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: 0

",
        400,
    ),
    // §3.3.6 (multi01): single-valued fields given twice, differently.
    (
        "multi01",
        "INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: 0

",
        400,
    ),
    // Not from RFC 4475: a header line that is not a field.
    (
        "nocolon",
        "NOTIFY sip:hub@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bK-nocolon
From: <sip:alice@example.com>;tag=a
To: <sip:hub@example.com>;tag=b
Call-ID: nocolon@192.0.2.20
CSeq: 3 NOTIFY
This line is not a header
Content-Length: 0

",
        400,
    ),
    // Not from RFC 4475: the header section never ends.
    (
        "noend",
        "NOTIFY sip:hub@192.0.2.10 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bK-noend
From: <sip:alice@example.com>;tag=a
To: <sip:hub@example.com>;tag=b
Call-ID: noend@192.0.2.20
CSeq: 3 NOTIFY
Content-Length: 0
",
        400,
    ),
];

/// Invalid responses (RFC 4475 §3.1.2.4 scalarlg, §3.1.2.18 bigcode, and a
/// response without a status code): dropped, never answered.
pub const INVALID_RESPONSES: &[(&str, &str)] = &[
    (
        "scalarlg",
        "SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture \"In Progress\"
Content-Length: 0

",
    ),
    (
        "bigcode",
        "SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>

",
    ),
    (
        "nocode",
        "SIP/2.0 OK
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: nocode@192.0.2.105
CSeq: 1 OPTIONS
From: <sip:user@example.com>;tag=1
To: <sip:user@example.edu>;tag=2
Content-Length: 0

",
    ),
];

/// Every valid message above, for the parser tests and the mutation test.
pub fn valid() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("folded-subject", wire(FOLDED_SUBJECT_NOTIFY)),
        ("folded-everywhere", wire(FOLDED_EVERYWHERE_NOTIFY)),
        ("wsinv", wsinv()),
        ("intmeth", intmeth()),
        ("esc01", esc01()),
        ("escnull", wire(ESCNULL)),
        ("esc02", wire(ESC02)),
        ("lwsdisp", wire(LWSDISP)),
        ("longreq", longreq()),
        ("dblreq", wire(DBLREQ)),
        ("semiuri", wire(SEMIURI)),
        ("transports", wire(TRANSPORTS)),
        ("mpart01", mpart01()),
        ("unreason", unreason()),
        ("noreason", wire(NOREASON)),
    ]
}

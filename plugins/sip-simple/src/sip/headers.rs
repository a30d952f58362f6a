//! The header section of a SIP message as RFC 3261 §7.3 and §25.1 write
//! it: where it ends, its fields unfolded, field names in their long form.
//!
//! What real peers send and a line-by-line split gets wrong:
//! - A field continues on the next line when that line starts with SP or
//!   HTAB (`LWS = [*WSP CRLF] 1*WSP`); the line break with the whitespace
//!   around it counts as one SP (§7.3.1). Folding may stand wherever LWS
//!   may: after the colon, inside a Via between `SIP / 2.0 / UDP`, between
//!   the CSeq number and method, after a list comma, around `=`.
//! - `HCOLON = *( SP / HTAB ) ":" SWS`: whitespace may precede the colon and
//!   the value may be empty or start on the next line.
//! - Field names are case-insensitive tokens; the compact forms name the
//!   same fields as the long ones.
//! - Unknown fields are kept with whatever value they carry (`;;,,;;,;`).
//!
//! Lines may also end in a bare LF. RFC 3261 asks for CRLF, but accepting
//! LF loses nothing and some embedded stacks send it.

/// Where the header section ends: `(end of the last header line, start of
/// the body)`, i.e. around the first empty line. `None` until the empty
/// line has arrived (a stream) or when it is missing (a datagram).
pub fn section_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    while let Some(rel) = bytes[line_start..].iter().position(|&b| b == b'\n') {
        let nl = line_start + rel;
        let line = &bytes[line_start..nl];
        if line.is_empty() || line == b"\r" {
            return Some((line_start, nl + 1));
        }
        line_start = nl + 1;
    }
    None
}

/// The fields of a header section (the lines after the start line), each
/// as `(lowercase long name, unfolded and trimmed value)` in order, and the
/// number (1-based) of the first line that is not a field: no colon, no
/// token before it, or a continuation with no field to continue. Fields
/// after a bad line are still read, so a request can be answered from its
/// Via, From, To, Call-ID and CSeq.
pub fn fields(section: &str) -> (Vec<(String, String)>, Option<usize>) {
    let mut out = Vec::new();
    let mut fault = None;
    // The field being unfolded: its first line's number and its text.
    let mut open: Option<(usize, String)> = None;
    for (index, line) in section.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match open.as_mut() {
                Some((_, text)) => {
                    // The line break and the whitespace around it are one SP.
                    text.truncate(text.trim_end_matches([' ', '\t']).len());
                    text.push(' ');
                    text.push_str(line.trim_start_matches([' ', '\t']));
                }
                None => {
                    fault.get_or_insert(index + 1);
                }
            }
            continue;
        }
        if let Some(done) = open.replace((index + 1, line.to_string())) {
            close(done, &mut out, &mut fault);
        }
    }
    if let Some(done) = open {
        close(done, &mut out, &mut fault);
    }
    (out, fault)
}

/// Adds one unfolded field, or records that it is none.
fn close(
    (line, text): (usize, String),
    out: &mut Vec<(String, String)>,
    fault: &mut Option<usize>,
) {
    match field(&text) {
        Some(f) => out.push(f),
        None => {
            fault.get_or_insert(line);
        }
    }
}

/// One unfolded line → `(long name, trimmed value)`.
fn field(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return None;
    }
    Some((long_name(name), value.trim_matches([' ', '\t']).to_string()))
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// A field name lowercased, compact forms expanded: RFC 3261 §7.3.3 and the
/// compact forms later RFCs registered (RFC 3265/6665 `o`, `u`; RFC 3515
/// `r`; RFC 3841 `a`, `j`, `d`; RFC 3892 `b`; RFC 4028 `x`; RFC 4474 `y`,
/// `n`).
pub fn long_name(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    let long = match n.as_str() {
        "a" => "accept-contact",
        "b" => "referred-by",
        "c" => "content-type",
        "d" => "request-disposition",
        "e" => "content-encoding",
        "f" => "from",
        "i" => "call-id",
        "j" => "reject-contact",
        "k" => "supported",
        "l" => "content-length",
        "m" => "contact",
        "n" => "identity-info",
        "o" => "event",
        "r" => "refer-to",
        "s" => "subject",
        "t" => "to",
        "u" => "allow-events",
        "v" => "via",
        "x" => "session-expires",
        "y" => "identity",
        _ => return n,
    };
    long.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(section: &str) -> Vec<(String, String)> {
        let (f, fault) = fields(section);
        assert_eq!(fault, None, "{section:?}");
        f
    }

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn the_empty_line_ends_the_section() {
        assert_eq!(section_end(b"A: 1\r\nB: 2\r\n\r\nbody"), Some((12, 14)));
        assert_eq!(section_end(b"A: 1\nB: 2\n\nbody"), Some((10, 11)));
        assert_eq!(section_end(b"A: 1\r\nB: 2\n\r\nbody"), Some((11, 13)));
        assert_eq!(section_end(b"A: 1\r\nB: 2\r\n"), None);
        assert_eq!(section_end(b""), None);
    }

    #[test]
    fn folded_lines_join_with_one_space() {
        assert_eq!(
            only("Subject: a long subject that\r\n continues on a second line\r\n"),
            [pair(
                "subject",
                "a long subject that continues on a second line"
            )]
        );
        // Several continuation lines, tabs, whitespace on both sides.
        assert_eq!(
            only("X-Odd: one  \r\n\t two\r\n     three\r\nNext: 1"),
            [pair("x-odd", "one two three"), pair("next", "1")]
        );
        // The value starts on the next line; the CSeq method is folded away
        // from its number.
        assert_eq!(
            only("TO :\r\n sip:bob@example.com ;   tag    = 1918\r\ncseq: 0009\r\n  INVITE"),
            [
                pair("to", "sip:bob@example.com ;   tag    = 1918"),
                pair("cseq", "0009 INVITE")
            ]
        );
    }

    #[test]
    fn names_any_case_compact_whitespace_before_colon() {
        assert_eq!(
            only(
                "MaX-fOrWaRdS: 0068\r\nv:  SIP/2.0/UDP h\r\nL:0\r\nC%6Fntact\t: <sip:x@y>\r\ns :\r\n"
            ),
            [
                pair("max-forwards", "0068"),
                pair("via", "SIP/2.0/UDP h"),
                pair("content-length", "0"),
                pair("c%6fntact", "<sip:x@y>"),
                pair("subject", ""),
            ]
        );
        for (short, long) in [
            ("a", "accept-contact"),
            ("B", "referred-by"),
            ("d", "request-disposition"),
            ("e", "content-encoding"),
            ("I", "call-id"),
            ("j", "reject-contact"),
            ("k", "supported"),
            ("o", "event"),
            ("r", "refer-to"),
            ("u", "allow-events"),
            ("x", "session-expires"),
            ("y", "identity"),
            ("n", "identity-info"),
        ] {
            assert_eq!(long_name(short), long);
        }
    }

    #[test]
    fn unknown_fields_keep_odd_values() {
        assert_eq!(
            only(
                "UnknownHeaderWithUnusualValue: ;;,,;;,;\r\nextensionHeader-!.%*+_`'~: \u{5927}\u{505C}\u{96FB}\r\n"
            ),
            [
                pair("unknownheaderwithunusualvalue", ";;,,;;,;"),
                pair("extensionheader-!.%*+_`'~", "\u{5927}\u{505C}\u{96FB}"),
            ]
        );
    }

    #[test]
    fn lines_that_are_not_fields() {
        let (f, fault) = fields("Call-ID: a\r\nno colon here\r\nCSeq: 1 NOTIFY\r\n");
        assert_eq!(fault, Some(2));
        assert_eq!(f, [pair("call-id", "a"), pair("cseq", "1 NOTIFY")]);
        let (_, fault) = fields(" leading: continuation\r\nA: 1");
        assert_eq!(fault, Some(1));
        for bad in [
            ": empty name",
            "Two Words: x",
            "Bad(name): x",
            "N\u{e4}me: x",
        ] {
            assert!(fields(bad).1.is_some(), "{bad}");
        }
    }
}

//! MIME multipart bodies (RFC 2046 §5.1) as used by RLS NOTIFYs
//! (`multipart/related`, RFC 4662) and DFKS notifications carrying several
//! events (`multipart/mixed`), plus a small Content-Type parser.
//!
//! Choices:
//! - Lines may end in CRLF or bare LF (some PBXs emit LF only).
//! - The preamble before the first delimiter and the epilogue after the
//!   close delimiter are ignored.
//! - A missing close delimiter is tolerated for the last part only when that
//!   part has a complete header block (headers ended by an empty line): a
//!   sender that forgot `--boundary--` still produced a usable part, while a
//!   part cut inside its headers means the body was truncated and is refused.
//!   A trailing line break at the very end of such a part is dropped, as it
//!   would have belonged to the missing delimiter.
//! - Header names are case-insensitive and folded header lines (continuation
//!   lines starting with space or tab) are joined.
//! - `Content-Transfer-Encoding` is not decoded: every server we target sends
//!   `binary`/`8bit`, and a base64 part simply fails its own XML parse.

use super::{BodyError, check_size};

/// Most parts accepted in one body; bounds work on adversarial input far
/// above any real resource list.
const MAX_PARTS: usize = 10_000;

/// Which multipart subtype the body declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartKind {
    /// `multipart/related` (RFC 2387): one root part (the `start` parameter,
    /// else the first part) refers to the others by Content-ID.
    Related,
    /// `multipart/mixed`: independent parts.
    Mixed,
    /// Any other subtype (e.g. `alternative`), lowercased; parsed the same way.
    Other(String),
}

/// A parsed multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// The declared subtype.
    pub kind: MultipartKind,
    /// The `start` parameter (Content-ID of the root part), without `<>`.
    pub start: Option<String>,
    /// The parts read, in order.
    pub parts: Vec<Part>,
    /// Parts that could not be read: their number in the body (from 0) and
    /// why. One bad part never drops the others.
    pub refused: Refused,
}

/// One body part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's Content-Type header value as sent (parameters included);
    /// `text/plain` when absent, the RFC 2046 default. Use
    /// [`Part::media_type`] to compare it.
    pub content_type: String,
    /// The Content-ID without the angle brackets.
    pub content_id: Option<String>,
    /// The part body, exactly as sent.
    pub body: Vec<u8>,
}

impl Part {
    /// The lowercased `type/subtype` of [`Part::content_type`].
    pub fn media_type(&self) -> String {
        media_type(&self.content_type).0
    }
}

impl Multipart {
    /// The root part of a `multipart/related` body: the part whose
    /// Content-ID is `start`, else the first part.
    pub fn root(&self) -> Option<&Part> {
        self.start
            .as_deref()
            .and_then(|s| self.part_by_cid(s))
            .or_else(|| self.parts.first())
    }

    /// The part with that Content-ID (compared without `<>`, and without a
    /// `cid:` URL prefix).
    pub fn part_by_cid(&self, cid: &str) -> Option<&Part> {
        let want = strip_cid(cid);
        self.parts
            .iter()
            .find(|p| p.content_id.as_deref().map(strip_cid) == Some(want))
    }
}

/// Strips whitespace, `<>` and a `cid:` URL scheme from a Content-ID.
pub(crate) fn strip_cid(cid: &str) -> &str {
    let c = cid.trim();
    let c = c.strip_prefix("cid:").unwrap_or(c);
    let c = c.strip_prefix('<').unwrap_or(c);
    c.strip_suffix('>').unwrap_or(c).trim()
}

/// Splits a Content-Type header value into its lowercased `type/subtype`
/// and its parameters (names lowercased, values unquoted, order kept).
///
/// Never fails: a value without `/` is returned lowercased as is, and
/// parameters without `=` are skipped, so callers decide what to accept.
pub fn media_type(header: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = split_params(header).into_iter();
    let ty = pieces
        .next()
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let params = pieces
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return None;
            }
            Some((name, unquote(value.trim())))
        })
        .collect();
    (ty, params)
}

/// Splits on `;` outside double quotes.
fn split_params(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in header.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}

fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"') else {
        return value.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Looks up a parameter by (lowercase) name.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Parses a multipart body using the boundary from its Content-Type.
pub fn parse_multipart(content_type_header: &str, body: &[u8]) -> Result<Multipart, BodyError> {
    check_size(body)?;
    let (ty, params) = media_type(content_type_header);
    let Some(subtype) = ty.strip_prefix("multipart/") else {
        return Err(BodyError::UnexpectedContentType(super::clip(
            content_type_header,
            128,
        )));
    };
    let kind = match subtype {
        "related" => MultipartKind::Related,
        "mixed" => MultipartKind::Mixed,
        other => MultipartKind::Other(other.to_string()),
    };
    let boundary = param(&params, "boundary")
        .ok_or_else(|| BodyError::Multipart("Content-Type has no boundary parameter".into()))?;
    // RFC 2046: 1 to 70 characters, not ending in a space.
    if boundary.is_empty() || boundary.len() > 70 || boundary.ends_with(' ') {
        return Err(BodyError::Multipart(format!(
            "invalid boundary {:?}",
            super::clip(boundary, 80)
        )));
    }
    let start = param(&params, "start").map(|s| strip_cid(s).to_string());
    let (parts, refused) = split_parts(body, boundary.as_bytes())?;
    Ok(Multipart {
        kind,
        start,
        parts,
        refused,
    })
}

/// A delimiter line found in the body.
struct Delimiter {
    /// Offset where the part before it ends (before the line break that
    /// precedes the delimiter).
    part_end: usize,
    /// Offset just after the delimiter line (start of the next part).
    next_start: usize,
    /// `--boundary--`.
    close: bool,
}

/// Finds the next delimiter line at or after `from`. A delimiter is
/// `--boundary` at the start of a line, optionally followed by `--`, then
/// optional transport padding (spaces/tabs) and a line break or the end.
fn find_delimiter(body: &[u8], boundary: &[u8], from: usize) -> Option<Delimiter> {
    let mut pos = from;
    while pos <= body.len() {
        let hay = &body[pos..];
        let rel = find_subslice(hay, b"--")?;
        let at = pos + rel;
        let at_line_start = at == from || at == 0 || body[at - 1] == b'\n';
        if at_line_start && body[at + 2..].starts_with(boundary) {
            let mut end = at + 2 + boundary.len();
            let close = body[end..].starts_with(b"--");
            if close {
                end += 2;
            }
            while end < body.len() && (body[end] == b' ' || body[end] == b'\t') {
                end += 1;
            }
            let line_end = if end == body.len() {
                Some(end)
            } else if body[end..].starts_with(b"\r\n") {
                Some(end + 2)
            } else if body[end] == b'\n' {
                Some(end + 1)
            } else {
                None
            };
            if let Some(next_start) = line_end {
                // The line break before the delimiter belongs to it.
                let mut part_end = at;
                if part_end > from && body[part_end - 1] == b'\n' {
                    part_end -= 1;
                    if part_end > from && body[part_end - 1] == b'\r' {
                        part_end -= 1;
                    }
                }
                return Some(Delimiter {
                    part_end,
                    next_start,
                    close,
                });
            }
        }
        pos = at + 1;
    }
    None
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parts that could not be read: their number in the body and why.
type Refused = Vec<(usize, BodyError)>;

/// The parts read and those refused (by number). An error only when the
/// framing itself is broken or no part at all could be read.
fn split_parts(body: &[u8], boundary: &[u8]) -> Result<(Vec<Part>, Refused), BodyError> {
    let first = find_delimiter(body, boundary, 0)
        .ok_or_else(|| BodyError::Multipart("boundary delimiter not found".into()))?;
    if first.close {
        return Err(BodyError::Multipart("body has no parts".into()));
    }
    let mut parts = Vec::new();
    let mut refused = Vec::new();
    let mut start = first.next_start;
    let done = |parts: Vec<Part>, refused: Refused| match refused.first() {
        Some((_, e)) if parts.is_empty() => Err(e.clone()),
        _ => Ok((parts, refused)),
    };
    for index in 0.. {
        if index >= MAX_PARTS {
            return Err(BodyError::Multipart(format!("more than {MAX_PARTS} parts")));
        }
        match find_delimiter(body, boundary, start) {
            Some(delim) => {
                match parse_part(&body[start..delim.part_end], index) {
                    Ok(p) => parts.push(p),
                    Err(e) => refused.push((index, e)),
                }
                if delim.close {
                    return done(parts, refused);
                }
                start = delim.next_start;
            }
            None => {
                // Missing close delimiter: accept the last part only if its
                // header block is complete (see the module comment).
                let mut raw = &body[start..];
                if header_end(raw).is_none() {
                    refused.push((
                        index,
                        BodyError::Multipart(format!(
                            "part {index} is truncated (no close delimiter, incomplete headers)"
                        )),
                    ));
                    return done(parts, refused);
                }
                raw = raw.strip_suffix(b"\n").unwrap_or(raw);
                raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                match parse_part(raw, index) {
                    Ok(p) => parts.push(p),
                    Err(e) => refused.push((index, e)),
                }
                return done(parts, refused);
            }
        }
    }
    unreachable!("the loop returns")
}

/// Offset of the header block's end and of the body start: the first empty
/// line (CRLF or LF). A part starting with an empty line has no headers.
fn header_end(raw: &[u8]) -> Option<(usize, usize)> {
    if raw.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if raw.starts_with(b"\n") {
        return Some((0, 1));
    }
    let mut i = 0;
    while let Some(rel) = raw[i..].iter().position(|&b| b == b'\n') {
        let nl = i + rel;
        let rest = &raw[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((nl + 1, nl + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((nl + 1, nl + 2));
        }
        i = nl + 1;
    }
    None
}

fn parse_part(raw: &[u8], index: usize) -> Result<Part, BodyError> {
    let (head_end, body_start) = header_end(raw).ok_or_else(|| {
        BodyError::Multipart(format!("part {index} has no empty line after its headers"))
    })?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut content_type = None;
    let mut content_id = None;
    for (name, value) in unfold_headers(&head) {
        let name = name.ok_or_else(|| {
            BodyError::Multipart(format!("part {index} has a header line without a colon"))
        })?;
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value);
        } else if name.eq_ignore_ascii_case("content-id") {
            content_id = Some(strip_cid(&value).to_string());
        }
    }
    Ok(Part {
        content_type: content_type.unwrap_or_else(|| "text/plain".to_string()),
        content_id,
        body: raw[body_start..].to_vec(),
    })
}

/// Splits a header block into (name, value) with folded lines joined; a
/// line with no colon yields a `None` name.
fn unfold_headers(head: &str) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t'])
            && let Some((_, value)) = out.last_mut()
        {
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => {
                out.push((Some(name.trim().to_string()), value.trim().to_string()));
            }
            None => out.push((None, String::new())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::fixtures;

    #[test]
    fn content_type_parser() {
        let (ty, params) = media_type(
            r#"Multipart/Related ; type="application/rlmi+xml";START="<rlmi@hub>"; boundary=b1;x="a;b\"c""#,
        );
        assert_eq!(ty, "multipart/related");
        assert_eq!(
            params,
            vec![
                ("type".into(), "application/rlmi+xml".into()),
                ("start".into(), "<rlmi@hub>".into()),
                ("boundary".into(), "b1".into()),
                ("x".into(), "a;b\"c".into()),
            ]
        );
        assert_eq!(media_type("").0, "");
        assert_eq!(media_type("application/pidf+xml").1, vec![]);
        assert_eq!(
            media_type("text/plain; junk; a=").1,
            vec![("a".into(), "".into())]
        );
    }

    #[test]
    fn rlmi_example_from_facts() {
        let mp =
            parse_multipart(fixtures::RLS_CONTENT_TYPE, fixtures::RLS_BODY.as_bytes()).unwrap();
        assert_eq!(mp.kind, MultipartKind::Related);
        assert_eq!(mp.start.as_deref(), Some("rlmi@hub"));
        assert_eq!(mp.parts.len(), 2);
        assert_eq!(mp.parts[0].content_id.as_deref(), Some("rlmi@hub"));
        assert_eq!(mp.parts[0].media_type(), "application/rlmi+xml");
        assert!(mp.parts[0].body.starts_with(b"<?xml"));
        assert!(mp.parts[0].body.ends_with(b"</list>"));
        assert_eq!(mp.root().unwrap().content_id.as_deref(), Some("rlmi@hub"));
        assert_eq!(
            mp.part_by_cid("<alice1@hub>").unwrap().media_type(),
            "application/pidf+xml"
        );
    }

    #[test]
    fn lf_only_preamble_epilogue_folding() {
        let body = "preamble text\n--xyz\ncontent-TYPE: application/pidf+xml;\n charset=UTF-8\nCONTENT-ID:\n\t<a@b>\n\none\n--xyz  \n\ntwo\n\n--xyz--\nepilogue\n--xyz\nignored\n";
        let mp = parse_multipart("multipart/mixed; boundary=\"xyz\"", body.as_bytes()).unwrap();
        assert_eq!(mp.kind, MultipartKind::Mixed);
        assert_eq!(mp.parts.len(), 2);
        assert_eq!(
            mp.parts[0].content_type,
            "application/pidf+xml; charset=UTF-8"
        );
        assert_eq!(mp.parts[0].content_id.as_deref(), Some("a@b"));
        assert_eq!(mp.parts[0].body, b"one");
        assert_eq!(mp.parts[1].content_type, "text/plain");
        assert_eq!(mp.parts[1].body, b"two\n");
    }

    #[test]
    fn boundary_lookalikes_inside_parts_are_not_delimiters() {
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nx --b y\r\n--bc\r\n--b--\r\n";
        let mp = parse_multipart("multipart/mixed;boundary=b", body.as_bytes()).unwrap();
        assert_eq!(mp.parts.len(), 1);
        assert_eq!(mp.parts[0].body, b"x --b y\r\n--bc");
    }

    #[test]
    fn missing_close_delimiter() {
        let ok = "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nContent-Type: text/plain\r\n\r\nlast\r\n";
        let mp = parse_multipart("multipart/mixed;boundary=b", ok.as_bytes()).unwrap();
        assert_eq!(mp.parts.len(), 2);
        assert_eq!(mp.parts[1].body, b"last");

        // A last part cut inside its headers is refused; the parts before
        // it still count.
        let cut = "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nContent-Ty";
        let mp = parse_multipart("multipart/mixed;boundary=b", cut.as_bytes()).unwrap();
        assert_eq!(mp.parts.len(), 1);
        assert!(matches!(mp.refused[..], [(1, BodyError::Multipart(_))]));
        // Nothing readable at all is an error.
        let only_cut = "--b\r\nContent-Ty";
        assert!(matches!(
            parse_multipart("multipart/mixed;boundary=b", only_cut.as_bytes()),
            Err(BodyError::Multipart(_))
        ));
    }

    #[test]
    fn one_bad_part_never_drops_the_others() {
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nno colon here\r\n\r\nx\r\n--b\r\nContent-Type: text/plain\r\n\r\nthird\r\n--b--\r\n";
        let mp = parse_multipart("multipart/mixed;boundary=b", body.as_bytes()).unwrap();
        assert_eq!(mp.parts.len(), 2);
        assert_eq!(mp.parts[1].body, b"third");
        assert_eq!(mp.refused.len(), 1);
        assert_eq!(mp.refused[0].0, 1);
    }

    #[test]
    fn errors() {
        let mixed = "multipart/mixed;boundary=b";
        for (ct, body) in [
            ("application/pidf+xml", "--b\r\n\r\nx\r\n--b--"),
            ("multipart/mixed", "--b\r\n\r\nx\r\n--b--"),
            ("multipart/mixed;boundary=\"\"", "--\r\n\r\nx\r\n----"),
            (mixed, "no delimiter at all"),
            (mixed, "--b--\r\n"),
            (mixed, "--b\r\nno colon line\r\n\r\nx\r\n--b--"),
            (
                mixed,
                "--b\r\nContent-Type: text/plain\r\nbody without blank line\r\n--b--",
            ),
        ] {
            assert!(
                parse_multipart(ct, body.as_bytes()).is_err(),
                "{ct} {body:?}"
            );
        }
        let long = format!("multipart/mixed;boundary={}", "x".repeat(71));
        assert!(parse_multipart(&long, b"").is_err());
    }
}

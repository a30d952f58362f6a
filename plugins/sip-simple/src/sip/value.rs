//! Reading header values (RFC 3261 §25.1): comma lists, name-addr and
//! addr-spec with their parameters, delta-seconds. Quoted strings (with
//! `\` escapes) are skipped wherever a delimiter is searched, so a display
//! name such as `"Bob <ops>, \"B\""` splits nothing.

use std::str::CharIndices;

/// The characters of a value that stand outside quoted strings, with their
/// byte offsets. Once exhausted, `quoted` tells whether a quote was left
/// open.
struct Unquoted<'a> {
    chars: CharIndices<'a>,
    quoted: bool,
}

impl<'a> Unquoted<'a> {
    fn new(value: &'a str) -> Self {
        Self {
            chars: value.char_indices(),
            quoted: false,
        }
    }
}

impl Iterator for Unquoted<'_> {
    type Item = (usize, char);

    fn next(&mut self) -> Option<(usize, char)> {
        while let Some((i, c)) = self.chars.next() {
            match (self.quoted, c) {
                (true, '\\') => {
                    self.chars.next();
                }
                (true, '"') => self.quoted = false,
                (true, _) => {}
                (false, '"') => self.quoted = true,
                (false, _) => return Some((i, c)),
            }
        }
        None
    }
}

/// Splits a comma-separated header list (Via, Route, Contact, ...) into its
/// trimmed, non-empty entries; commas inside quotes or `<...>` do not split.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() {
            out.push(s.to_string());
        }
    };
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in Unquoted::new(value) {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&value[start..]);
    out
}

/// A name-addr (`"Bob" <sip:bob@x>;tag=1`) or addr-spec
/// (`sip:bob@x;tag=1`) split into its URI and the text of its parameters
/// (from the first `;` after the URI, or empty). `None` when a quote or
/// `<` is left open. An addr-spec ends at the first `;`, because a URI with
/// `;`, `,` or `?` must be written in angle brackets (§20.10).
pub fn address(value: &str) -> Option<(&str, &str)> {
    let mut scan = Unquoted::new(value);
    let mut open = None;
    for (i, c) in scan.by_ref() {
        match (c, open) {
            ('<', None) => open = Some(i + 1),
            ('>', Some(start)) => return Some((value[start..i].trim(), &value[i + 1..])),
            ('>', None) => return None,
            _ => {}
        }
    }
    if scan.quoted || open.is_some() {
        return None;
    }
    let (uri, params) = value.split_at(value.find(';').unwrap_or(value.len()));
    Some((uri.trim(), params))
}

/// The URI of a name-addr or addr-spec (empty when the value is malformed).
pub fn uri_of(value: &str) -> String {
    address(value)
        .map(|(uri, _)| uri.to_string())
        .unwrap_or_default()
}

/// A `;name=value` parameter of a header value (outside the `<uri>` and
/// outside quotes), the name compared without case, a quoted value
/// unquoted; `Some("")` for a flag parameter. Works on any value with
/// parameters: addresses, Via, Event, Subscription-State, Content-Type.
pub fn param(value: &str, name: &str) -> Option<String> {
    let (_, params) = address(value)?;
    let mut start = 0;
    let mut pieces = Vec::new();
    for (i, c) in Unquoted::new(params) {
        if c == ';' {
            pieces.push(&params[start..i]);
            start = i + 1;
        }
    }
    pieces.push(&params[start..]);
    pieces.into_iter().find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| unquote(v.trim()))
    })
}

/// A quoted-string's content with its escapes resolved; other text as is.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// `delta-seconds` (Expires, Min-Expires, Retry-After): digits, leading
/// zeros allowed; a value beyond 2^32-1 counts as 2^32-1 (§20.19).
pub fn delta_seconds(text: &str) -> Option<u32> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = t.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10)
            .saturating_add(u64::from(d - b'0'))
            .min(u64::from(u32::MAX))
    });
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_list("SIP/2.0/UDP a;branch=1 ,\tSIP/2.0/TCP b;branch=2,"),
            ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b;branch=2"]
        );
        assert_eq!(
            split_list(r#""Bob, \"the\" <boss>" <sip:b@x;a=1,2>, <sip:c@y>"#),
            [r#""Bob, \"the\" <boss>" <sip:b@x;a=1,2>"#, "<sip:c@y>"]
        );
        assert!(split_list(" , ,").is_empty());
    }

    #[test]
    fn addresses_and_their_parameters() {
        let v = r#""J Rosenberg \\\""       <sip:alice@example.com>  ;  tag = 98asjd8"#;
        assert_eq!(uri_of(v), "sip:alice@example.com");
        assert_eq!(param(v, "TAG").as_deref(), Some("98asjd8"));
        let v = "sip:bob@example.com ;   tag    = 1918181833n";
        assert_eq!(uri_of(v), "sip:bob@example.com");
        assert_eq!(param(v, "tag").as_deref(), Some("1918181833n"));
        // No space between display name and '<'; '<' and ';' inside quotes.
        assert_eq!(
            uri_of(r#"caller<sip:caller@example.com>;tag=323"#),
            "sip:caller@example.com"
        );
        let v = r#""a <b>; c" <sip:x@y;transport=tcp>;tag="q;r";lr"#;
        assert_eq!(uri_of(v), "sip:x@y;transport=tcp");
        assert_eq!(param(v, "tag").as_deref(), Some("q;r"));
        assert_eq!(param(v, "lr").as_deref(), Some(""));
        assert_eq!(param(v, "transport"), None);
        // Unbalanced quote or bracket: no URI, no parameters.
        for bad in [
            r#""Mr. J. User <sip:j@example.com>"#,
            "<sip:x@y",
            "sip:x@y>",
        ] {
            assert_eq!(address(bad), None, "{bad}");
            assert_eq!(uri_of(bad), "");
        }
    }

    #[test]
    fn parameters_of_other_values() {
        let via = "SIP  /   2.0 /UDP    192.0.2.2;branch= z9hG4bK30239 ;rport";
        assert_eq!(param(via, "branch").as_deref(), Some("z9hG4bK30239"));
        assert_eq!(param(via, "rport").as_deref(), Some(""));
        let ct = r#"multipart/related;type="application/rlmi+xml";boundary="a;b""#;
        assert_eq!(param(ct, "boundary").as_deref(), Some("a;b"));
        assert_eq!(
            param("active;expires=0600", "expires").as_deref(),
            Some("0600")
        );
    }

    #[test]
    fn delta_seconds_leading_zeros_and_overflow() {
        assert_eq!(delta_seconds(" 0600 "), Some(600));
        assert_eq!(delta_seconds("0"), Some(0));
        assert_eq!(delta_seconds("4294967295"), Some(u32::MAX));
        assert_eq!(delta_seconds("10000000000000000000000"), Some(u32::MAX));
        for bad in ["", "-1", "1.5", "60s", "six"] {
            assert_eq!(delta_seconds(bad), None, "{bad}");
        }
    }
}

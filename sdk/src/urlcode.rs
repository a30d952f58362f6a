//! Percent-encoding for URLs, query strings and
//! `application/x-www-form-urlencoded` bodies (RFC 3986 §2.1, WHATWG URL
//! "application/x-www-form-urlencoded").

/// Percent-encodes everything but RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`): safe in a path segment, a query value and a form
/// field alike.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%XX` escapes and, as forms write spaces, `+`. A malformed escape
/// is kept as written; invalid UTF-8 is replaced.
pub fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex_value(*bytes.get(i + 1)?)? * 16 + hex_value(*bytes.get(i + 2)?)?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(value), _) => {
                out.push(value);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An `application/x-www-form-urlencoded` body (or query string) of these
/// name/value pairs, in order.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode_component(name));
        out.push('=');
        out.push_str(&encode_component(value));
    }
    out
}

/// The decoded value of the first `name` in a query string or form body
/// (without the leading `?`), if present.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| decode_component(key) == name)
        .map(|(_, value)| decode_component(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_non_ascii() {
        assert_eq!(encode_component("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
        assert_eq!(
            form(&[("grant_type", "urn:x:y"), ("k", "")]),
            "grant_type=urn%3Ax%3Ay&k="
        );
    }

    #[test]
    fn decodes_and_finds_values() {
        assert_eq!(decode_component("a+b%20c%2Fd%zz%4"), "a b c/d%zz%4");
        assert_eq!(decode_component("%C3%A9"), "é");
        let q = "code=U1BC%2Bx&state=abc&flag&empty=";
        assert_eq!(query_value(q, "code").as_deref(), Some("U1BC+x"));
        assert_eq!(query_value(q, "state").as_deref(), Some("abc"));
        assert_eq!(query_value(q, "flag").as_deref(), Some(""));
        assert_eq!(query_value(q, "empty").as_deref(), Some(""));
        assert_eq!(query_value(q, "missing"), None);
        let round = "x y+z&é=%";
        assert_eq!(decode_component(&encode_component(round)), round);
    }
}

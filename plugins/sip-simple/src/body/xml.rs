//! A small namespace-resolved element tree built with quick-xml.
//!
//! The formats here are tiny documents that are read by walking a few known
//! paths, so a tree is simpler and less error-prone than a hand-written
//! state machine per format. The builder enforces the size, depth and
//! element-count limits, so the tree's memory is bounded by the input.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{BodyError, MAX_XML_DEPTH, MAX_XML_ELEMENTS, check_size};

/// Namespace URIs of the formats we read.
pub(crate) mod ns {
    pub const PIDF: &str = "urn:ietf:params:xml:ns:pidf";
    pub const DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";
    pub const RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
    /// Prefix of the draft-era RPID namespaces (`...:status:rpid`,
    /// `...:status:rpid-status`) that Cisco phones still write.
    pub const RPID_DRAFT_STATUS: &str = "urn:ietf:params:xml:ns:pidf:status:rpid";
    /// Cisco's RPID extension namespace (`ce:dnd`, `ce:alerting`, its own
    /// `person` and `activities` in Cisco presence servers).
    pub const CISCO_RPID: &str = "urn:cisco:params:xml:ns:pidf:rpid";
    pub const DIALOG_INFO: &str = "urn:ietf:params:xml:ns:dialog-info";
    pub const RLMI: &str = "urn:ietf:params:xml:ns:rlmi";
}

/// One element: its namespace URI (None when unqualified or the prefix is
/// undeclared), local name, attributes by local name, child elements and the
/// concatenation of its direct text (text, CDATA and resolved references).
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// True when this element has that namespace and local name.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }

    /// Attribute by local name, whatever its prefix.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Direct children with that namespace and local name.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// First direct child with that namespace and local name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// First direct child with that local name, in any or no namespace.
    pub fn child_any_ns(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Trimmed direct text.
    pub fn text_trimmed(&self) -> &str {
        self.text.trim()
    }

    /// Calls `f` on every descendant (not self), depth first in document
    /// order. Recursion is bounded by [`MAX_XML_DEPTH`].
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Element)) {
        for c in &self.children {
            f(c);
            c.walk(f);
        }
    }

    /// `{namespace}local`, for error messages.
    pub fn qualified(&self) -> String {
        match &self.ns {
            Some(ns) => format!("{{{ns}}}{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Parses a document into its root element, enforcing every limit.
pub(crate) fn parse_document(input: &[u8]) -> Result<Element, BodyError> {
    check_size(input)?;
    // quick-xml skips a UTF-8 BOM itself without the `encoding` feature, but
    // stripping it here keeps that independent of its configuration.
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut reader = NsReader::from_reader(input);
    {
        let cfg = reader.config_mut();
        // Tolerate `&` that starts no reference (seen in hand-written notes)
        // instead of refusing the whole document.
        cfg.allow_dangling_amp = true;
        cfg.check_end_names = true;
        cfg.trim_text(false);
    }

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;

    loop {
        // Resolve the namespace at once so the result no longer borrows the
        // reader (the event itself borrows only the input).
        let next = reader
            .read_resolved_event()
            .map(|(resolved, event)| (namespace_of(&resolved), event));
        let (ns, event) = match next {
            Ok(v) => v,
            Err(e) => {
                return Err(BodyError::Xml(format!(
                    "{e} (near byte {})",
                    reader.error_position()
                )));
            }
        };
        match event {
            Event::Start(start) => {
                let el = open_element(&start, ns, &mut count, stack.len(), &root)?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = open_element(&start, ns, &mut count, stack.len(), &root)?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                // check_end_names makes quick-xml reject a mismatched or
                // unmatched end tag before we get here.
                let Some(el) = stack.pop() else {
                    return Err(BodyError::Xml("unmatched end tag".into()));
                };
                attach(&mut stack, &mut root, el);
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&String::from_utf8_lossy(&text.into_inner()));
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&String::from_utf8_lossy(&data.into_inner()));
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&reference);
                    push_reference(&mut top.text, &name);
                }
            }
            // Declarations (whatever encoding they claim), comments,
            // processing instructions and DOCTYPEs carry nothing we read.
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
    }

    if !stack.is_empty() {
        return Err(BodyError::Truncated);
    }
    root.ok_or(BodyError::NoRootElement)
}

fn namespace_of(resolved: &ResolveResult<'_>) -> Option<String> {
    match resolved {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        // Unqualified, or a prefix nobody declared: both mean "no namespace
        // we could match", which the format parsers handle.
        ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
    }
}

fn open_element(
    start: &BytesStart<'_>,
    ns: Option<String>,
    count: &mut usize,
    depth_before: usize,
    root: &Option<Element>,
) -> Result<Element, BodyError> {
    if depth_before + 1 > MAX_XML_DEPTH {
        return Err(BodyError::TooDeep {
            limit: MAX_XML_DEPTH,
        });
    }
    if depth_before == 0 && root.is_some() {
        return Err(BodyError::Xml("more than one root element".into()));
    }
    *count += 1;
    if *count > MAX_XML_ELEMENTS {
        return Err(BodyError::TooManyElements {
            limit: MAX_XML_ELEMENTS,
        });
    }
    let mut attrs = Vec::new();
    // Duplicate-attribute checks would only turn a harmless quirk into a
    // refusal; syntax errors still surface.
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|e| BodyError::Xml(format!("bad attribute: {e}")))?;
        let key = attr.key;
        if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
            continue;
        }
        let local = String::from_utf8_lossy(key.local_name().as_ref()).into_owned();
        let raw = String::from_utf8_lossy(&attr.value);
        attrs.push((local, unescape(&raw)));
    }
    Ok(Element {
        ns,
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

/// Appends the expansion of `&name;`. Unknown named entities (no DTD is
/// read) stay literal; an invalid character reference becomes U+FFFD.
fn push_reference(out: &mut String, name: &str) {
    match name {
        "amp" => out.push('&'),
        "lt" => out.push('<'),
        "gt" => out.push('>'),
        "quot" => out.push('"'),
        "apos" => out.push('\''),
        _ => {
            if let Some(num) = name.strip_prefix('#') {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse::<u32>().ok(),
                };
                out.push(
                    code.filter(|&c| c != 0)
                        .and_then(char::from_u32)
                        .unwrap_or('\u{FFFD}'),
                );
            } else {
                out.push('&');
                out.push_str(name);
                out.push(';');
            }
        }
    }
}

/// Resolves references in an attribute value, tolerating stray `&`.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        // A reference name is short; a far-away ';' means a stray '&'.
        match after.find(';').filter(|&semi| semi > 0 && semi <= 16) {
            Some(semi) => {
                push_reference(&mut out, &after[..semi]);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for element content or a double-quoted attribute, and drops
/// characters XML 1.0 cannot carry at all (so a note with a stray control
/// character still yields a well-formed document).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_whatever_the_prefix() {
        let doc = br#"<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- comment --><p:a xmlns:p="urn:x" xmlns="urn:d" z:foo="1" xmlns:z="urn:z"><b>t&amp;u<![CDATA[<v>]]>&#x41;&#66;&unknown;</b><p:c/></p:a>"#;
        let root = parse_document(doc).unwrap();
        assert!(root.is("urn:x", "a"));
        assert_eq!(root.attr("foo"), Some("1"));
        let b = root.child("urn:d", "b").unwrap();
        assert_eq!(b.text, "t&u<v>AB&unknown;");
        assert!(root.child("urn:x", "c").is_some());
    }

    #[test]
    fn bom_and_attribute_escapes() {
        let doc = b"\xEF\xBB\xBF<a x=\"1 &amp; 2 &lt; &#x33; & 4\"/>";
        let root = parse_document(doc).unwrap();
        assert_eq!(root.attr("x"), Some("1 & 2 < 3 & 4"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let doc = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xE9</a>";
        let root = parse_document(doc).unwrap();
        assert_eq!(root.text, "caf\u{FFFD}");
    }

    #[test]
    fn limits_and_malformations() {
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1) + &"</a>".repeat(MAX_XML_DEPTH + 1);
        assert_eq!(
            parse_document(deep.as_bytes()).unwrap_err(),
            BodyError::TooDeep {
                limit: MAX_XML_DEPTH
            }
        );
        let ok = "<a>".repeat(MAX_XML_DEPTH) + &"</a>".repeat(MAX_XML_DEPTH);
        assert!(parse_document(ok.as_bytes()).is_ok());
        let empty_deep = "<a>".repeat(MAX_XML_DEPTH) + "<b/>" + &"</a>".repeat(MAX_XML_DEPTH);
        assert!(matches!(
            parse_document(empty_deep.as_bytes()),
            Err(BodyError::TooDeep { .. })
        ));
        assert_eq!(parse_document(b"<a><b>").unwrap_err(), BodyError::Truncated);
        assert_eq!(parse_document(b"").unwrap_err(), BodyError::NoRootElement);
        assert_eq!(
            parse_document(b"just text").unwrap_err(),
            BodyError::NoRootElement
        );
        assert!(matches!(parse_document(b"<a></b>"), Err(BodyError::Xml(_))));
        assert!(matches!(
            parse_document(b"<a/><b/>"),
            Err(BodyError::Xml(_))
        ));
        assert!(matches!(
            parse_document(b"<a x=1/>"),
            Err(BodyError::Xml(_))
        ));
        let big = vec![b' '; super::super::MAX_BODY_BYTES + 1];
        assert!(matches!(
            parse_document(&big),
            Err(BodyError::TooLarge { .. })
        ));
        let many = "<a>".to_string() + &"<b/>".repeat(MAX_XML_ELEMENTS) + "</a>";
        assert!(matches!(
            parse_document(many.as_bytes()),
            Err(BodyError::TooManyElements { .. })
        ));
    }

    #[test]
    fn escape_round_trips() {
        let s = "a<b>&\"c'\u{1}d";
        let doc = format!("<a x=\"{}\">{}</a>", escape(s), escape(s));
        let root = parse_document(doc.as_bytes()).unwrap();
        assert_eq!(root.text, "a<b>&\"c'd");
        assert_eq!(root.attr("x"), Some("a<b>&\"c'd"));
    }
}

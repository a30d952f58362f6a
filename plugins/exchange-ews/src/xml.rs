//! A small namespace-resolved element tree (quick-xml), for reading EWS
//! answers by walking known paths, and escaping for the requests we write.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// EWS namespaces (the schema's, spelled `http://` as the servers write
/// them; Microsoft's web pages show `https://` by a rendering mistake).
pub mod ns {
    pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    pub const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
    pub const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
    pub const ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";
}

/// Largest answer read (a 100-mailbox batch with two days of details is far
/// below this).
const MAX_BYTES: usize = 8 * 1024 * 1024;
const MAX_DEPTH: usize = 64;

/// One element: namespace, local name, attributes by local name, children,
/// direct text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// Follows a path of (namespace, name) steps from this element.
    pub fn path(&self, steps: &[(&str, &str)]) -> Option<&Element> {
        let mut at = self;
        for (ns, name) in steps {
            at = at.child(ns, name)?;
        }
        Some(at)
    }

    /// Trimmed text of a child, if present.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.trim())
    }

    /// The first descendant (depth first) with this local name, any
    /// namespace.
    pub fn find_local(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(f) = c.find_local(name) {
                return Some(f);
            }
        }
        None
    }
}

/// Parses a document into its root element.
pub fn parse(input: &[u8]) -> Result<Element, String> {
    if input.len() > MAX_BYTES {
        return Err(format!("answer larger than {MAX_BYTES} bytes"));
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut reader = NsReader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((r, e)) => (namespace_of(&r), e),
            Err(e) => return Err(format!("{e} (near byte {})", reader.error_position())),
        };
        match event {
            Event::Start(s) | Event::Empty(s) if stack.len() >= MAX_DEPTH => {
                let _ = s;
                return Err("XML nested too deeply".into());
            }
            Event::Start(s) => stack.push(open(&s, ns)?),
            Event::Empty(s) => {
                let el = open(&s, ns)?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unmatched end tag")?;
                attach(&mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    push_reference(&mut top.text, &String::from_utf8_lossy(&r));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err("truncated XML".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn namespace_of(r: &ResolveResult<'_>) -> Option<String> {
    match r {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        _ => None,
    }
}

fn open(s: &quick_xml::events::BytesStart<'_>, ns: Option<String>) -> Result<Element, String> {
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let key = a.key;
        if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
            continue;
        }
        let value = a
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?;
        attrs.push((
            String::from_utf8_lossy(key.local_name().as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        ns,
        name: String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
        attrs,
        ..Element::default()
    })
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_some() => return Err("more than one root element".into()),
        None => *root = Some(el),
    }
    Ok(())
}

fn push_reference(out: &mut String, name: &str) {
    match name {
        "amp" => out.push('&'),
        "lt" => out.push('<'),
        "gt" => out.push('>'),
        "quot" => out.push('"'),
        "apos" => out.push('\''),
        _ => {
            let code = name
                .strip_prefix('#')
                .and_then(|n| match n.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => n.parse().ok(),
                });
            out.push(code.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
        }
    }
}

/// Escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_text_and_references() {
        let doc = br#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:X xmlns:m="urn:m" a="1&amp;2">x &lt; y<![CDATA[ & z]]></m:X></s:Body></s:Envelope>"#;
        let root = parse(doc).unwrap();
        assert!(root.is(ns::SOAP, "Envelope"));
        let x = root.path(&[(ns::SOAP, "Body"), ("urn:m", "X")]).unwrap();
        assert_eq!(x.attr("a"), Some("1&2"));
        assert_eq!(x.text, "x < y & z");
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &apos;b&apos;&gt;");
    }
}

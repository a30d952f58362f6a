//! Splitting a SIP byte stream (TCP/TLS) into messages by Content-Length.

use super::headers;

/// Largest message we buffer; a peer that sends more is cut off.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// Accumulates stream bytes and yields whole messages.
#[derive(Default)]
pub struct Framer {
    buf: Vec<u8>,
}

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Message(Vec<u8>),
    /// A message that cannot be framed (no or bad Content-Length, or too
    /// big): the stream is out of sync and must be reconnected.
    Broken(String),
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            // RFC 5626 keep-alive CRLFs between messages (and, as RFC 3261
            // §7.5 asks, any line break before a start line).
            let blank = self
                .buf
                .iter()
                .position(|b| !matches!(b, b'\r' | b'\n'))
                .unwrap_or(self.buf.len());
            self.buf.drain(..blank);
            let Some((head_end, body_start)) = headers::section_end(&self.buf) else {
                if self.buf.len() > MAX_MESSAGE {
                    self.buf.clear();
                    out.push(Frame::Broken("headers exceed 1 MiB".into()));
                }
                break;
            };
            // The same header grammar as the parser's: `l:`, any case,
            // whitespace before the colon, a value folded onto the next line.
            let head = String::from_utf8_lossy(&self.buf[..head_end]);
            let fields = head.split_once('\n').map_or("", |(_start_line, f)| f);
            let len = headers::fields(fields)
                .0
                .into_iter()
                .find(|(name, _)| name == "content-length")
                .map(|(_, v)| {
                    v.bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| v.parse::<usize>().ok())
                        .flatten()
                });
            let len = match len {
                Some(Some(n)) if n <= MAX_MESSAGE => n,
                Some(Some(_)) => {
                    self.buf.clear();
                    out.push(Frame::Broken("Content-Length exceeds 1 MiB".into()));
                    break;
                }
                _ => {
                    self.buf.clear();
                    out.push(Frame::Broken(
                        "message on a stream without a valid Content-Length".into(),
                    ));
                    break;
                }
            };
            let total = body_start + len;
            if self.buf.len() < total {
                break;
            }
            out.push(Frame::Message(self.buf.drain(..total).collect()));
        }
        out
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_joined_messages() {
        let m = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        let mut f = Framer::default();
        let mut all = m.to_vec();
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(m);
        assert!(f.push(&all[..10]).is_empty());
        let frames = f.push(&all[10..]);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], Frame::Message(m.to_vec()));
    }

    #[test]
    fn content_length_in_any_header_form() {
        for head in [
            "l: 3",
            "CONTENT-LENGTH   :   3",
            "Content-Length:\r\n   0003",
            "X-Before: a\r\n b\r\nL:3",
        ] {
            let m = format!("NOTIFY sip:a SIP/2.0\r\n{head}\r\n\r\nabc");
            let mut f = Framer::default();
            let mut data = b"\r\n\r\n".to_vec();
            data.extend_from_slice(m.as_bytes());
            data.extend_from_slice(b"NOTIFY");
            let frames = f.push(&data);
            assert_eq!(frames, [Frame::Message(m.clone().into_bytes())], "{head}");
        }
        // Bare LF line ends frame too.
        let m = b"NOTIFY sip:a SIP/2.0\nl: 2\n\nok";
        assert_eq!(Framer::default().push(m), [Frame::Message(m.to_vec())]);
    }

    #[test]
    fn wrong_or_missing_length_breaks_the_stream() {
        let mut f = Framer::default();
        assert!(matches!(
            f.push(b"NOTIFY x SIP/2.0\r\n\r\n")[0],
            Frame::Broken(_)
        ));
        assert!(matches!(
            f.push(b"NOTIFY x SIP/2.0\r\nl: 99999999\r\n\r\n")[0],
            Frame::Broken(_)
        ));
        assert!(matches!(
            f.push(b"NOTIFY x SIP/2.0\r\nl: -1\r\n\r\n")[0],
            Frame::Broken(_)
        ));
        // A too-short declared length leaves the rest as the next message's
        // start, which then fails to frame or parse: no panic either way.
        let frames = f.push(b"NOTIFY x SIP/2.0\r\nContent-Length: 1\r\n\r\nabc");
        assert_eq!(frames.len(), 1);
    }
}

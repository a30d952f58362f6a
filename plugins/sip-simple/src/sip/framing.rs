//! Splitting a SIP byte stream (TCP/TLS) into messages by Content-Length.

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
            // RFC 5626 keep-alive CRLFs between messages.
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                if self.buf.len() > MAX_MESSAGE {
                    self.buf.clear();
                    out.push(Frame::Broken("headers exceed 1 MiB".into()));
                }
                break;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]);
            let len = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l"))
                    .then(|| v.trim().parse::<usize>().ok())
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
            let total = end + 4 + len;
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
        // A too-short declared length leaves the rest as the next message's
        // start, which then fails to frame or parse: no panic either way.
        let frames = f.push(b"NOTIFY x SIP/2.0\r\nContent-Length: 1\r\n\r\nabc");
        assert_eq!(frames.len(), 1);
    }
}

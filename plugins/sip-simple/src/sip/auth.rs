//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760): MD5 and
//! SHA-256, with and without qop=auth.

use md5::Md5;
use sha2::{Digest, Sha256};

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub proxy: bool,
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offers qop=auth.
    pub qop_auth: bool,
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    NotDigest,
    Missing(&'static str),
    /// e.g. SHA-512-256, MD5-sess, or only qop=auth-int.
    Unsupported(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::NotDigest => f.write_str("challenge is not Digest"),
            AuthError::Missing(p) => write!(f, "challenge lacks {p}"),
            AuthError::Unsupported(what) => write!(f, "unsupported digest {what}"),
        }
    }
}

/// Parse `Digest k=v, k="v", ...`.
fn params(v: &str) -> Option<Vec<(String, String)>> {
    let rest = v.trim();
    let (scheme, rest) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key.to_ascii_lowercase(), val.trim().to_string()));
    }
    Some(out)
}

impl Challenge {
    pub fn parse(value: &str, proxy: bool) -> Result<Challenge, AuthError> {
        let p = params(value).ok_or(AuthError::NotDigest)?;
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm")
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("MD5") => Algorithm::Md5,
            Some("SHA-256") => Algorithm::Sha256,
            Some(other) => return Err(AuthError::Unsupported(format!("algorithm {other}"))),
        };
        let qop = get("qop");
        let qop_auth = qop
            .as_deref()
            .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
        if qop.is_some() && !qop_auth {
            return Err(AuthError::Unsupported(format!(
                "qop {}",
                qop.unwrap_or_default()
            )));
        }
        Ok(Challenge {
            proxy,
            realm: get("realm").ok_or(AuthError::Missing("realm"))?,
            nonce: get("nonce").ok_or(AuthError::Missing("nonce"))?,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The header (name, value) answering this challenge for `method` on
    /// `uri`, with nonce count `nc` and client nonce `cnonce`.
    pub fn answer(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> (&'static str, String) {
        let h = |s: String| match self.algorithm {
            Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
        };
        let ha1 = h(format!("{username}:{}:{password}", self.realm));
        let ha2 = h(format!("{method}:{uri}"));
        let nc_s = format!("{nc:08x}");
        let response = if self.qop_auth {
            h(format!("{ha1}:{}:{nc_s}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            h(format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let alg = match self.algorithm {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        };
        let mut v = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={alg}",
            self.realm, self.nonce
        );
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        if self.qop_auth {
            v.push_str(&format!(", qop=auth, cnonce=\"{cnonce}\", nc={nc_s}"));
        }
        let name = if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        (name, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_vector() {
        // RFC 2617 §3.5 (HTTP, but the arithmetic is the same).
        let c = Challenge::parse(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
            false,
        )
        .unwrap();
        assert!(c.qop_auth);
        let (name, v) = c.answer(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert_eq!(name, "Authorization");
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
        assert!(
            v.contains("nc=00000001") && v.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"")
        );
    }

    #[test]
    fn without_qop_and_sha256_and_proxy() {
        let c = Challenge::parse(r#"Digest realm="r", nonce="n""#, true).unwrap();
        let (name, v) = c.answer("u", "p", "SUBSCRIBE", "sip:a@b", 1, "c");
        assert_eq!(name, "Proxy-Authorization");
        // H(H(u:r:p):n:H(SUBSCRIBE:sip:a@b)) with MD5
        let ha1 = hex::encode(Md5::digest(b"u:r:p"));
        let ha2 = hex::encode(Md5::digest(b"SUBSCRIBE:sip:a@b"));
        let want = hex::encode(Md5::digest(format!("{ha1}:n:{ha2}").as_bytes()));
        assert!(v.contains(&want) && !v.contains("qop"), "{v}");
        let c = Challenge::parse(
            r#"Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth", stale=TRUE"#,
            false,
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(c.stale);
        let (_, v) = c.answer("u", "p", "PUBLISH", "sip:a@b", 2, "c");
        assert!(v.contains("algorithm=SHA-256") && v.contains("nc=00000002"));
    }

    #[test]
    fn unsupported_and_malformed() {
        assert_eq!(
            Challenge::parse("Basic realm=x", false),
            Err(AuthError::NotDigest)
        );
        assert!(matches!(
            Challenge::parse(
                r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#,
                false
            ),
            Err(AuthError::Unsupported(_))
        ));
        assert!(matches!(
            Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#, false),
            Err(AuthError::Unsupported(_))
        ));
        assert_eq!(
            Challenge::parse(r#"Digest realm="r""#, false),
            Err(AuthError::Missing("nonce"))
        );
        let _ = Challenge::parse("Digest ,,,=\"", false);
    }
}

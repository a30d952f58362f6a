//! Request authentication: the `X-Hub-Timestamp` / `X-Hub-Signature` headers,
//! the HMAC-SHA256 check and the clock-skew check.
//!
//! The sender signs `"<timestamp>.<raw body>"` with the shared secret and
//! sends `X-Hub-Signature: sha256=<hex>`. Binding the timestamp into the MAC
//! is what lets the skew check and the replay set refuse old requests.

use hmac::{Hmac, Mac};
use presence_connector_sdk::Header;
use sha2::Sha256;

/// Header carrying the sender's clock, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Hub-Timestamp";
/// Header carrying `sha256=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";

const SIGNATURE_SCHEME: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag.
pub const SIGNATURE_LEN: usize = 32;

/// A request whose signature and timestamp checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The sender's timestamp, Unix seconds.
    pub timestamp_secs: u64,
    /// The MAC, which identifies the request for replay detection.
    pub signature: [u8; SIGNATURE_LEN],
}

/// Why a request failed authentication. All of them answer 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing, repeated or malformed.
    BadHeader(String),
    /// The MAC does not match the body and timestamp.
    BadSignature,
    /// The timestamp is further from the hub's clock than allowed.
    ClockSkew {
        /// Sender's clock minus the hub's, in whole seconds.
        offset_secs: i64,
        /// The configured maximum.
        allowed_secs: u64,
    },
}

impl AuthError {
    /// The message returned to the sender.
    pub fn message(&self) -> String {
        match self {
            AuthError::BadHeader(message) => message.clone(),
            AuthError::BadSignature => format!(
                "{SIGNATURE_HEADER} does not match the body and {TIMESTAMP_HEADER}; \
                 check the shared secret and sign \"<timestamp>.<raw body>\""
            ),
            AuthError::ClockSkew {
                offset_secs,
                allowed_secs,
            } => {
                let direction = if *offset_secs < 0 {
                    "behind"
                } else {
                    "ahead of"
                };
                format!(
                    "{TIMESTAMP_HEADER} is {} s {direction} the hub's clock (at most \
                     {allowed_secs} s allowed): the sender's clock is off",
                    offset_secs.unsigned_abs()
                )
            }
        }
    }
}

/// Checks the signature, then the timestamp against `now_ms`.
///
/// The signature comes first so that only a holder of the secret learns how
/// far off its clock is.
pub fn verify(
    headers: &[Header],
    body: &[u8],
    secret: &[u8],
    max_skew_secs: u64,
    now_ms: u64,
) -> Result<Verified, AuthError> {
    let timestamp = required_header(headers, TIMESTAMP_HEADER)?;
    let timestamp_secs = parse_timestamp(timestamp)?;
    let signature = parse_signature(required_header(headers, SIGNATURE_HEADER)?)?;

    // `verify_slice` compares in constant time.
    mac(secret, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| AuthError::BadSignature)?;

    let offset_ms = i128::from(timestamp_secs) * 1000 - i128::from(now_ms);
    if offset_ms.unsigned_abs() > u128::from(max_skew_secs) * 1000 {
        return Err(AuthError::ClockSkew {
            offset_secs: i64::try_from(offset_ms / 1000).unwrap_or(i64::MAX),
            allowed_secs: max_skew_secs,
        });
    }
    Ok(Verified {
        timestamp_secs,
        signature,
    })
}

/// The `X-Hub-Signature` value for a request; what a sender computes.
#[cfg(test)]
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("{SIGNATURE_SCHEME}{}", hex::encode(tag))
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The value of a header that must appear exactly once. Header names are
/// case-insensitive; a repeated header is refused because proxies and
/// frameworks disagree on which copy counts.
fn required_header<'a>(headers: &'a [Header], name: &str) -> Result<&'a str, AuthError> {
    let mut values = headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str());
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value.trim()),
        (None, _) => Err(AuthError::BadHeader(format!("missing {name} header"))),
        (Some(_), Some(_)) => Err(AuthError::BadHeader(format!("{name} header is repeated"))),
    }
}

/// Unix seconds as plain decimal digits. `u64::from_str` alone would also
/// take a leading `+`, which a sender's signing code would not reproduce.
fn parse_timestamp(value: &str) -> Result<u64, AuthError> {
    let malformed = || {
        AuthError::BadHeader(format!(
            "{TIMESTAMP_HEADER} must be Unix time in seconds, as decimal digits"
        ))
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    value.parse().map_err(|_| malformed())
}

fn parse_signature(value: &str) -> Result<[u8; SIGNATURE_LEN], AuthError> {
    let malformed = || {
        AuthError::BadHeader(format!(
            "{SIGNATURE_HEADER} must be \"{SIGNATURE_SCHEME}\" followed by {} hex digits",
            SIGNATURE_LEN * 2
        ))
    };
    let hex_digits = value.strip_prefix(SIGNATURE_SCHEME).ok_or_else(malformed)?;
    let mut signature = [0; SIGNATURE_LEN];
    hex::decode_to_slice(hex_digits, &mut signature).map_err(|_| malformed())?;
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-secret";
    const NOW_MS: u64 = 1_700_000_000_000;
    const BODY: &[u8] = br#"{"endpoint":"1001","telephony":{"line":"idle"}}"#;

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    fn signed(timestamp: &str, body: &[u8]) -> Vec<Header> {
        vec![
            header("x-hub-timestamp", timestamp),
            header("X-HUB-SIGNATURE", &sign(SECRET, timestamp, body)),
        ]
    }

    #[test]
    fn accepts_a_correct_signature_with_any_header_case() {
        let verified = verify(&signed("1700000000", BODY), BODY, SECRET, 300, NOW_MS).unwrap();
        assert_eq!(verified.timestamp_secs, 1_700_000_000);
    }

    #[test]
    fn matches_an_independently_computed_hmac() {
        // printf '%s' '1700000000.hello' | openssl dgst -sha256 -hmac 'key-of-sixteen-b'
        assert_eq!(
            sign(b"key-of-sixteen-b", "1700000000", b"hello"),
            "sha256=7190fc3a54ae088c39068d350d59ded79234454bb8535dca451f097a84653337"
        );
    }

    #[test]
    fn rejects_a_wrong_secret_body_or_timestamp() {
        let headers = signed("1700000000", BODY);
        assert_eq!(
            verify(&headers, BODY, b"another-secret-of-16", 300, NOW_MS),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&headers, b"{}", SECRET, 300, NOW_MS),
            Err(AuthError::BadSignature)
        );
        let mut moved = headers.clone();
        moved[0] = header(TIMESTAMP_HEADER, "1700000001");
        assert_eq!(
            verify(&moved, BODY, SECRET, 300, NOW_MS),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn rejects_missing_repeated_and_malformed_headers() {
        let good = signed("1700000000", BODY);
        let cases: Vec<Vec<Header>> = vec![
            vec![good[1].clone()],
            vec![good[0].clone()],
            vec![good[0].clone(), good[1].clone(), good[1].clone()],
            vec![header(TIMESTAMP_HEADER, "+1700000000"), good[1].clone()],
            vec![header(TIMESTAMP_HEADER, "1700000000.5"), good[1].clone()],
            vec![
                header(TIMESTAMP_HEADER, "99999999999999999999"),
                good[1].clone(),
            ],
            vec![good[0].clone(), header(SIGNATURE_HEADER, "sha1=abcd")],
            vec![good[0].clone(), header(SIGNATURE_HEADER, "sha256=abcd")],
            vec![
                good[0].clone(),
                header(SIGNATURE_HEADER, &"sha256=zz".repeat(32)),
            ],
        ];
        for headers in cases {
            let result = verify(&headers, BODY, SECRET, 300, NOW_MS);
            assert!(
                matches!(result, Err(AuthError::BadHeader(_))),
                "{headers:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn enforces_the_clock_skew_both_ways() {
        // Exactly at the limit is fine.
        for ts in ["1699999700", "1700000300"] {
            assert!(
                verify(&signed(ts, BODY), BODY, SECRET, 300, NOW_MS).is_ok(),
                "{ts}"
            );
        }
        let late = verify(&signed("1699999699", BODY), BODY, SECRET, 300, NOW_MS);
        assert_eq!(
            late,
            Err(AuthError::ClockSkew {
                offset_secs: -301,
                allowed_secs: 300
            })
        );
        assert!(late.unwrap_err().message().contains("clock is off"));
        let early = verify(&signed("1700000301", BODY), BODY, SECRET, 300, NOW_MS);
        assert!(matches!(
            early,
            Err(AuthError::ClockSkew {
                offset_secs: 301,
                ..
            })
        ));
    }

    #[test]
    fn a_bad_signature_hides_the_clock_offset() {
        let mut headers = signed("1", BODY);
        headers[1] = header(SIGNATURE_HEADER, &format!("sha256={}", "00".repeat(32)));
        assert_eq!(
            verify(&headers, BODY, SECRET, 300, NOW_MS),
            Err(AuthError::BadSignature)
        );
    }
}

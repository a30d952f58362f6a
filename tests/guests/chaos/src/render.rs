//! The endpoint-state details the chaos connector reports for connections
//! and requests. Tests match on these strings, so they spell the contract's
//! own words (kebab-case variant names) rather than Rust debug output.

use presence_connector_sdk::{CloseInfo, Failure};

/// A failure as `kind` or `kind: detail`, in the WIT's names, e.g.
/// `tls-certificate: unknown issuer`, `refused`,
/// `upgrade-refused: status 403`.
pub fn failure(failure: &Failure) -> String {
    match failure {
        Failure::Dns(detail) => format!("dns: {detail}"),
        Failure::Refused => "refused".into(),
        Failure::Timeout => "timeout".into(),
        Failure::Reset => "reset".into(),
        Failure::TlsCertificate(detail) => format!("tls-certificate: {detail}"),
        Failure::Tls(detail) => format!("tls: {detail}"),
        Failure::UpgradeRefused(answer) => format!("upgrade-refused: status {}", answer.status),
        Failure::Protocol(detail) => format!("protocol: {detail}"),
        Failure::Other(detail) => format!("other: {detail}"),
    }
}

/// How a stream or WebSocket ended:
/// `closed code=<code|none> reason=<reason> failure=<failure|none>`.
/// The reason is printed as sent, possibly empty.
pub fn close(close: &CloseInfo) -> String {
    let code = close
        .code
        .map_or_else(|| "none".to_owned(), |code| code.to_string());
    format!(
        "closed code={code} reason={} failure={}",
        close.reason,
        optional_failure(close.failure.as_ref())
    )
}

/// A failed HTTP request: `failure=<failure>`.
pub fn request_failure(failure: &Failure) -> String {
    format!("failure={}", self::failure(failure))
}

/// A successful WebSocket upgrade: `opened subprotocol=<subprotocol|none>`.
pub fn opened(subprotocol: Option<&str>) -> String {
    format!("opened subprotocol={}", subprotocol.unwrap_or("none"))
}

fn optional_failure(failure: Option<&Failure>) -> String {
    failure.map_or_else(|| "none".to_owned(), self::failure)
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::RefusedUpgrade;

    #[test]
    fn renders_every_failure_in_wit_terms() {
        let cases = [
            (Failure::Dns("no such host".into()), "dns: no such host"),
            (Failure::Refused, "refused"),
            (Failure::Timeout, "timeout"),
            (Failure::Reset, "reset"),
            (
                Failure::TlsCertificate("unknown issuer".into()),
                "tls-certificate: unknown issuer",
            ),
            (
                Failure::Tls("no common cipher".into()),
                "tls: no common cipher",
            ),
            (
                Failure::UpgradeRefused(RefusedUpgrade {
                    status: 403,
                    headers: Vec::new(),
                    body: b"go away".to_vec(),
                }),
                "upgrade-refused: status 403",
            ),
            (Failure::Protocol("bad frame".into()), "protocol: bad frame"),
            (Failure::Other("odd".into()), "other: odd"),
        ];
        for (value, text) in cases {
            assert_eq!(failure(&value), text);
        }
    }

    #[test]
    fn renders_closes_and_request_failures() {
        let orderly = CloseInfo {
            code: Some(1000),
            reason: "bye".into(),
            failure: None,
        };
        assert_eq!(close(&orderly), "closed code=1000 reason=bye failure=none");
        let broken = CloseInfo {
            code: None,
            reason: String::new(),
            failure: Some(Failure::TlsCertificate("expired".into())),
        };
        assert_eq!(
            close(&broken),
            "closed code=none reason= failure=tls-certificate: expired"
        );
        assert_eq!(
            request_failure(&Failure::Timeout),
            "failure=timeout".to_owned()
        );
        assert_eq!(opened(Some("chaos.v1")), "opened subprotocol=chaos.v1");
        assert_eq!(opened(None), "opened subprotocol=none");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}

//! Why the stream to the server ended, in operators' words: the text ends
//! up in the connector's status detail ("pbx:5061 unreachable: ...").

use presence_connector_sdk::{CloseInfo, Failure};

pub fn describe(close: &CloseInfo) -> String {
    let Some(failure) = &close.failure else {
        return match close.reason.as_str() {
            "" => "the server closed the connection".into(),
            reason => format!("the server closed the connection: {reason}"),
        };
    };
    match failure {
        Failure::Dns(why) => format!("the server name did not resolve: {why}"),
        Failure::Refused => "connection refused".into(),
        Failure::Timeout => "connecting timed out".into(),
        Failure::Reset => "the connection was reset".into(),
        // The operator fixes this one (CA, name, expiry), so say so.
        Failure::TlsCertificate(why) => format!("TLS certificate refused: {why}"),
        Failure::Tls(why) => format!("TLS failed: {why}"),
        Failure::Protocol(why) => format!("protocol error: {why}"),
        // Only WebSockets are upgraded; a stream never ends so.
        Failure::UpgradeRefused(answer) => format!("upgrade refused ({})", answer.status),
        Failure::Other(why) => why.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(failure: Option<Failure>, reason: &str) -> String {
        describe(&CloseInfo {
            code: None,
            reason: reason.into(),
            failure,
        })
    }

    #[test]
    fn failures_are_named() {
        assert_eq!(
            closed(
                Some(Failure::TlsCertificate("certificate expired".into())),
                ""
            ),
            "TLS certificate refused: certificate expired"
        );
        assert_eq!(closed(Some(Failure::Refused), ""), "connection refused");
        assert_eq!(
            closed(Some(Failure::Dns("no such host".into())), ""),
            "the server name did not resolve: no such host"
        );
        assert_eq!(closed(None, ""), "the server closed the connection");
        assert_eq!(
            closed(None, "going down"),
            "the server closed the connection: going down"
        );
    }
}

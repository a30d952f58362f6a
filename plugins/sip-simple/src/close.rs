//! Why the stream to the server ended, in operators' words: the text ends
//! up in the connector's status detail ("pbx:5061 unreachable: ...").

use presence_connector_sdk::CloseInfo;

pub fn describe(close: &CloseInfo) -> String {
    let Some(failure) = &close.failure else {
        return match close.reason.as_str() {
            "" => "the server closed the connection".into(),
            reason => format!("the server closed the connection: {reason}"),
        };
    };
    presence_connector_sdk::render_failure(failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_connector_sdk::Failure;

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
            "name did not resolve: no such host"
        );
        assert_eq!(closed(None, ""), "the server closed the connection");
        assert_eq!(
            closed(None, "going down"),
            "the server closed the connection: going down"
        );
    }
}

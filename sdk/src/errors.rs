//! Building and rendering the contract's error types.

use crate::types::{ConnectorError, Failure, FieldError, HostError};

/// A [`ConnectorError::InvalidConfig`] naming `field`, the error `configure`
/// returns for a value it cannot use.
pub fn invalid_config(field: impl Into<String>, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidConfig(FieldError {
        field: field.into(),
        message: message.into(),
    })
}

/// Renders a host error as `kind: detail`, e.g.
/// `not-granted: tcp://10.9.9.9:5060`, for logs and endpoint-state details.
///
/// The generated `Display` impl prints the Rust debug form, which is not what
/// an operator should read.
pub fn render_host_error(error: &HostError) -> String {
    match error {
        HostError::NotGranted(grant) => format!("not-granted: {grant}"),
        HostError::InvalidArgument(detail) => format!("invalid-argument: {detail}"),
        HostError::UnknownHandle(handle) => format!("unknown-handle: {handle}"),
        HostError::LimitExceeded(detail) => format!("limit-exceeded: {detail}"),
        HostError::Io(detail) => format!("io: {detail}"),
        HostError::Other(detail) => format!("other: {detail}"),
    }
}

/// Renders a connection or request failure (contract `failure`) in
/// operators' words for statuses, logs and write outcomes, e.g.
/// `TLS certificate refused: unknown issuer`, `connection refused`.
/// Certificate problems say so: the operator fixes those (CA, name, expiry).
pub fn render_failure(failure: &Failure) -> String {
    match failure {
        Failure::Dns(detail) => format!("name did not resolve: {detail}"),
        Failure::Refused => "connection refused".into(),
        Failure::Timeout => "timed out".into(),
        Failure::Reset => "connection reset".into(),
        Failure::TlsCertificate(detail) => format!("TLS certificate refused: {detail}"),
        Failure::Tls(detail) => format!("TLS failed: {detail}"),
        Failure::UpgradeRefused(answer) => {
            format!("upgrade refused with HTTP {}", answer.status)
        }
        Failure::Protocol(detail) => format!("protocol error: {detail}"),
        Failure::Other(detail) => detail.clone(),
    }
}

/// Lets a connector pass a host failure on with `?`; the host error becomes
/// [`ConnectorError::Other`] with its rendered text.
impl From<HostError> for ConnectorError {
    fn from(error: HostError) -> Self {
        ConnectorError::Other(render_host_error(&error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_host_errors_in_wit_terms() {
        let error = HostError::NotGranted("tcp://10.9.9.9:5060".into());
        assert_eq!(
            render_host_error(&error),
            "not-granted: tcp://10.9.9.9:5060"
        );
        assert_eq!(
            ConnectorError::from(HostError::UnknownHandle(7)),
            ConnectorError::Other("unknown-handle: 7".into())
        );
    }

    #[test]
    fn renders_failures_naming_certificate_problems() {
        assert_eq!(
            render_failure(&Failure::TlsCertificate("expired".into())),
            "TLS certificate refused: expired"
        );
        assert_eq!(render_failure(&Failure::Refused), "connection refused");
    }

    #[test]
    fn invalid_config_names_the_field() {
        assert_eq!(
            invalid_config("server", "is required"),
            ConnectorError::InvalidConfig(FieldError {
                field: "server".into(),
                message: "is required".into(),
            })
        );
    }
}

//! Users as operators configure them, and which endpoint of a user each
//! connector instance watches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A person whose presence the hub shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// First extension number (telephony presence).
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub voicemail_number: Option<String>,
    /// SIP URI for rich presence.
    #[serde(default)]
    pub sip_uri_rich: Option<String>,
    /// SIP URI for telephony presence.
    #[serde(default)]
    pub sip_uri_telephony: Option<String>,
    #[serde(default)]
    pub teams_upn: Option<String>,
    #[serde(default)]
    pub lync_uri: Option<String>,
    /// Per connector instance, an explicit endpoint (manual override).
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
}

/// Which user attribute gives a connector instance its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Username,
    Email,
    Extension,
    SipUriRich,
    SipUriTelephony,
    TeamsUpn,
    LyncUri,
}

/// The presence channel an endpoint feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rich,
    Telephony,
    Both,
}

impl Field {
    /// The default field for a technology (plugin id).
    pub fn default_for(technology: &str) -> Field {
        match technology {
            "sip-simple" => Field::SipUriRich,
            "teams-graph" => Field::TeamsUpn,
            "skype-ucma" => Field::LyncUri,
            "ringcentral" | "http-push" => Field::Extension,
            _ => Field::Username,
        }
    }

    pub fn channel(self) -> Channel {
        match self {
            Field::Extension | Field::SipUriTelephony => Channel::Telephony,
            _ => Channel::Rich,
        }
    }

    fn value(self, u: &User) -> Option<&str> {
        match self {
            Field::Username => Some(u.username.as_str()),
            Field::Email => u.email.as_deref(),
            Field::Extension => u.extension.as_deref(),
            Field::SipUriRich => u.sip_uri_rich.as_deref(),
            Field::SipUriTelephony => u.sip_uri_telephony.as_deref(),
            Field::TeamsUpn => u.teams_upn.as_deref(),
            Field::LyncUri => u.lync_uri.as_deref(),
        }
        .filter(|v| !v.trim().is_empty())
    }
}

/// A field that does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct UserError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: &str) -> UserError {
    UserError {
        field: field.into(),
        message: message.into(),
    }
}

impl User {
    /// Check the fields an operator typed.
    pub fn validate(&self) -> Result<(), UserError> {
        let u = &self.username;
        if u.is_empty()
            || u.len() > 128
            || !u
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(err(
                "username",
                "1-128 letters, digits, '.', '_', '-' or '@'",
            ));
        }
        if self.display_name.len() > 256 {
            return Err(err("display_name", "at most 256 characters"));
        }
        if let Some(e) = &self.email
            && (!e.contains('@') || e.starts_with('@') || e.ends_with('@') || e.len() > 256)
        {
            return Err(err("email", "not an email address"));
        }
        for (name, v) in [
            ("extension", &self.extension),
            ("voicemail_number", &self.voicemail_number),
        ] {
            if let Some(v) = v
                && (v.is_empty()
                    || v.len() > 32
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_digit() || "+*#-() ".contains(c)))
            {
                return Err(err(name, "digits, + * # - ( ) and spaces, at most 32"));
            }
        }
        for (name, v) in [
            ("sip_uri_rich", &self.sip_uri_rich),
            ("sip_uri_telephony", &self.sip_uri_telephony),
            ("lync_uri", &self.lync_uri),
        ] {
            if let Some(v) = v {
                let bare = v.trim_start_matches("sips:").trim_start_matches("sip:");
                if !bare.contains('@') || bare.contains(char::is_whitespace) || v.len() > 256 {
                    return Err(err(name, "a SIP URI, sip:user@domain or user@domain"));
                }
            }
        }
        if let Some(v) = &self.teams_upn
            && (!v.contains('@') && v.len() != 36 || v.len() > 256)
        {
            return Err(err("teams_upn", "a UPN (user@tenant) or an object id"));
        }
        for (i, e) in &self.endpoints {
            if e.trim().is_empty() || e.len() > 512 {
                return Err(err(&format!("endpoints.{i}"), "1-512 characters"));
            }
        }
        Ok(())
    }

    /// The endpoint instance `instance` watches for this user, and the
    /// channel it feeds: a manual override, else a directory match by email,
    /// else the instance's field.
    pub fn endpoint_for(
        &self,
        instance: &str,
        field: Field,
        directory_by_email: impl Fn(&str) -> Option<String>,
    ) -> Option<(String, Channel)> {
        if let Some(e) = self.endpoints.get(instance) {
            return Some((e.clone(), Channel::Both));
        }
        if let Some(email) = &self.email
            && let Some(e) = directory_by_email(&email.to_ascii_lowercase())
        {
            return Some((e, field.channel()));
        }
        field.value(self).map(|v| (v.to_string(), field.channel()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            username: "alice".into(),
            display_name: "Alice".into(),
            department: None,
            email: Some("Alice@Example.com".into()),
            extension: Some("2001".into()),
            voicemail_number: None,
            sip_uri_rich: Some("sip:alice@example.com".into()),
            sip_uri_telephony: None,
            teams_upn: None,
            lync_uri: None,
            endpoints: BTreeMap::new(),
        }
    }

    #[test]
    fn override_then_directory_then_field() {
        let mut u = user();
        let none = |_: &str| None;
        assert_eq!(
            u.endpoint_for("pbx", Field::SipUriRich, none),
            Some(("sip:alice@example.com".into(), Channel::Rich))
        );
        assert_eq!(
            u.endpoint_for("tapi", Field::Extension, none),
            Some(("2001".into(), Channel::Telephony))
        );
        assert_eq!(u.endpoint_for("t", Field::TeamsUpn, none), None);
        let dir = |e: &str| (e == "alice@example.com").then(|| "obj-1".to_string());
        assert_eq!(
            u.endpoint_for("t", Field::TeamsUpn, dir),
            Some(("obj-1".into(), Channel::Rich))
        );
        u.endpoints.insert("t".into(), "manual".into());
        assert_eq!(
            u.endpoint_for("t", Field::TeamsUpn, dir),
            Some(("manual".into(), Channel::Both))
        );
    }

    #[test]
    fn validation_names_fields() {
        let mut u = user();
        assert!(u.validate().is_ok());
        u.extension = Some("12a".into());
        assert_eq!(u.validate().unwrap_err().field, "extension");
        let mut u = user();
        u.username = "has space".into();
        assert_eq!(u.validate().unwrap_err().field, "username");
        let mut u = user();
        u.sip_uri_rich = Some("alice".into());
        assert_eq!(u.validate().unwrap_err().field, "sip_uri_rich");
        let mut u = user();
        u.email = Some("nope".into());
        assert_eq!(u.validate().unwrap_err().field, "email");
    }
}

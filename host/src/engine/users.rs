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
    /// Attributes beyond the well-known ones above, by the names plugins
    /// declare in their endpoint kinds (`genesys-user-id`, `acme-badge`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Bidirectional sync for this user: on, off, or (none) as the
    /// department's or everyone's rule says (`sync` in the rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<bool>,
    /// Which of the user's connector instances take part in sync; none:
    /// all that take part at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_instances: Option<Vec<String>>,
}

/// The well-known user attributes, as plugins name them in their endpoint
/// kinds, and the user field each reads. Any other name is read from
/// [`User::attributes`].
pub const WELL_KNOWN_ATTRIBUTES: [&str; 7] = [
    "username",
    "email",
    "extension",
    "sip-uri",
    "telephony-sip-uri",
    "teams-upn",
    "lync-uri",
];

/// An attribute name as plugins and rules write it: 1-64 lowercase ASCII
/// letters, digits and '-', starting with a letter.
pub fn valid_attribute_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The attribute name for a name operators may have stored in rules before
/// attributes were named by plugins (`sip_uri_rich`).
pub fn canonical_attribute(name: &str) -> String {
    match name {
        "sip_uri_rich" => "sip-uri".into(),
        "sip_uri_telephony" => "telephony-sip-uri".into(),
        "teams_upn" => "teams-upn".into(),
        "lync_uri" => "lync-uri".into(),
        other => other.to_owned(),
    }
}

/// The presence channel an endpoint feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rich,
    Telephony,
    Both,
}

impl Channel {
    /// The channel of a well-known attribute an operator picked although
    /// the plugin did not declare it: numbers are lines, the rest people.
    pub fn of_well_known(attribute: &str) -> Channel {
        match attribute {
            "extension" | "telephony-sip-uri" => Channel::Telephony,
            _ => Channel::Rich,
        }
    }
}

/// Most entries in a user's `endpoints`, `attributes` or `sync_instances`.
pub const MAX_ENTRIES: usize = 256;

/// The canonical form of a username: 1-128 of lowercase ASCII letters,
/// digits, '.', '_', '-' and '@', starting and ending with a letter or a
/// digit. So a name is addressable as it is in a URL path (no `.` or `..`
/// that URL normalisers rewrite, no percent-encoding), means one thing
/// (no case variants, no Unicode look-alikes such as a Cyrillic 'а' for
/// 'a', no normalisation forms), and reads the same in logs. People's
/// names in any script go in `display_name`.
pub fn check_username(u: &str) -> Result<(), String> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if u.is_empty() || u.len() > 128 {
        return Err("1-128 characters".into());
    }
    if u.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "usernames are lower case: {:?}",
            u.to_ascii_lowercase()
        ));
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(
            "lowercase ASCII letters, digits, '.', '_', '-' or '@' (names in other scripts go in display_name)"
                .into(),
        );
    }
    if !edge_ok(u.chars().next()) || !edge_ok(u.chars().last()) {
        return Err("starts and ends with a letter or a digit".into());
    }
    Ok(())
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
        if let Err(message) = check_username(&self.username) {
            return Err(err("username", &message));
        }
        if self.display_name.len() > 256 {
            return Err(err("display_name", "at most 256 characters"));
        }
        if let Some(d) = &self.department
            && d.len() > 256
        {
            return Err(err("department", "at most 256 characters"));
        }
        if self.endpoints.len() > MAX_ENTRIES {
            return Err(err("endpoints", "at most 256 entries"));
        }
        if self.attributes.len() > MAX_ENTRIES {
            return Err(err("attributes", "at most 256 entries"));
        }
        if let Some(list) = &self.sync_instances
            && list.len() > MAX_ENTRIES
        {
            return Err(err("sync_instances", "at most 256 entries"));
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
            if i.len() > 128 {
                return Err(err(
                    "endpoints",
                    "connector instance ids of 1-128 characters",
                ));
            }
            if e.trim().is_empty() || e.len() > 512 {
                return Err(err(&format!("endpoints.{i}"), "1-512 characters"));
            }
        }
        if let Some(list) = &self.sync_instances
            && let Some(bad) = list.iter().find(|i| i.trim().is_empty() || i.len() > 128)
        {
            return Err(err(
                "sync_instances",
                &format!("connector instance ids of 1-128 characters; {bad:?} is not one"),
            ));
        }
        for (name, v) in &self.attributes {
            let field = format!("attributes.{name}");
            if !valid_attribute_name(name) {
                return Err(err(
                    &field,
                    "attribute names are 1-64 lowercase letters, digits and '-', starting with a letter",
                ));
            }
            if WELL_KNOWN_ATTRIBUTES.contains(&name.as_str()) {
                return Err(err(
                    &field,
                    "a well-known attribute: set its own field instead",
                ));
            }
            if v.trim().is_empty() || v.len() > 512 {
                return Err(err(&field, "1-512 characters"));
            }
        }
        Ok(())
    }

    /// The value of an attribute (well-known or the plugin's own), if set.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        match name {
            "username" => Some(self.username.as_str()),
            "email" => self.email.as_deref(),
            "extension" => self.extension.as_deref(),
            "sip-uri" => self.sip_uri_rich.as_deref(),
            "telephony-sip-uri" => self.sip_uri_telephony.as_deref(),
            "teams-upn" => self.teams_upn.as_deref(),
            "lync-uri" => self.lync_uri.as_deref(),
            other => self.attributes.get(other).map(String::as_str),
        }
        .filter(|v| !v.trim().is_empty())
    }

    /// The endpoints instance `instance` watches for this user, each with
    /// the channel it feeds: a manual override (both channels); else a
    /// directory match by email (the mapping's first channel); else by the
    /// mapping: the attribute the operator picked, or the plugin's endpoint
    /// kinds: the first kind feeding rich presence that the user has, and
    /// the first line kind (telephony only: an extension, a telephony SIP
    /// URI) the user has, one endpoint for both channels when they are the
    /// same. So one instance of a connector that reads presence and lines
    /// feeds both channels of each user.
    pub fn endpoints_for(
        &self,
        instance: &str,
        mapping: &Mapping,
        directory_by_email: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, Channel)> {
        if let Some(e) = self.endpoints.get(instance) {
            return vec![(e.clone(), Channel::Both)];
        }
        if let Some(email) = &self.email
            && let Some(e) = directory_by_email(&email.to_ascii_lowercase())
        {
            return vec![(e, mapping.first_channel())];
        }
        let kinds = match mapping {
            Mapping::Picked { attribute, channel } => {
                return self
                    .attribute(attribute)
                    .map(|v| (v.to_string(), *channel))
                    .into_iter()
                    .collect();
            }
            Mapping::Kinds(kinds) => kinds,
        };
        let value = |(a, c): &(String, Channel)| self.attribute(a).map(|v| (v.to_string(), *c));
        let rich = kinds
            .iter()
            .filter(|(_, c)| *c != Channel::Telephony)
            .find_map(value);
        let line = kinds
            .iter()
            .filter(|(_, c)| *c == Channel::Telephony)
            .find_map(value);
        match (rich, line) {
            (Some((r, _)), Some((l, _))) if r == l => vec![(r, Channel::Both)],
            (Some((r, _)), Some((l, _))) => vec![(r, Channel::Rich), (l, Channel::Telephony)],
            (Some(one), None) | (None, Some(one)) => vec![one],
            (None, None) => Vec::new(),
        }
    }
}

/// How an instance maps users to endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// The operator picked one attribute for the instance.
    Picked { attribute: String, channel: Channel },
    /// The plugin's endpoint kinds, in its order, with the channels each
    /// feeds.
    Kinds(Vec<(String, Channel)>),
}

impl Mapping {
    /// The channel of the mapping's first (default) kind.
    fn first_channel(&self) -> Channel {
        match self {
            Mapping::Picked { channel, .. } => *channel,
            Mapping::Kinds(k) => k.first().map_or(Channel::Rich, |(_, c)| *c),
        }
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
            attributes: BTreeMap::new(),
            ..Default::default()
        }
    }

    #[test]
    fn override_then_directory_then_field() {
        let mut u = user();
        let none = |_: &str| None;
        let picked = |a: &str, channel| Mapping::Picked {
            attribute: a.into(),
            channel,
        };
        assert_eq!(
            u.endpoints_for("pbx", &picked("sip-uri", Channel::Rich), none),
            vec![("sip:alice@example.com".into(), Channel::Rich)]
        );
        assert_eq!(
            u.endpoints_for("tapi", &picked("extension", Channel::Telephony), none),
            vec![("2001".into(), Channel::Telephony)]
        );
        let teams = Mapping::Kinds(vec![("teams-upn".into(), Channel::Rich)]);
        assert_eq!(u.endpoints_for("t", &teams, none), vec![]);
        let dir = |e: &str| (e == "alice@example.com").then(|| "obj-1".to_string());
        assert_eq!(
            u.endpoints_for("t", &teams, dir),
            vec![("obj-1".into(), Channel::Rich)]
        );
        u.endpoints.insert("t".into(), "manual".into());
        assert_eq!(
            u.endpoints_for("t", &teams, dir),
            vec![("manual".into(), Channel::Both)]
        );
        // A plugin's own attribute, by the name it declared.
        u.attributes.insert("acme-badge".into(), "B-17".into());
        let acme = Mapping::Kinds(vec![("acme-badge".into(), Channel::Rich)]);
        assert_eq!(
            u.endpoints_for("acme", &acme, none),
            vec![("B-17".into(), Channel::Rich)]
        );
        assert!(u.validate().is_ok());
        u.attributes.insert("Bad Name".into(), "x".into());
        assert_eq!(u.validate().unwrap_err().field, "attributes.Bad Name");
    }

    #[test]
    fn one_instance_feeds_presence_and_the_line() {
        let sip = Mapping::Kinds(vec![
            ("sip-uri".into(), Channel::Both),
            ("telephony-sip-uri".into(), Channel::Telephony),
            ("extension".into(), Channel::Telephony),
        ]);
        let none = |_: &str| None;
        let mut u = user();
        // Presence from the SIP URI, the line from the extension.
        assert_eq!(
            u.endpoints_for("pbx", &sip, none),
            vec![
                ("sip:alice@example.com".into(), Channel::Rich),
                ("2001".into(), Channel::Telephony)
            ]
        );
        // A telephony SIP URI comes before the extension.
        u.sip_uri_telephony = Some("sip:2001@pbx.example.com".into());
        assert_eq!(
            u.endpoints_for("pbx", &sip, none)[1],
            ("sip:2001@pbx.example.com".into(), Channel::Telephony)
        );
        // No line attribute: the SIP URI feeds both.
        u.sip_uri_telephony = None;
        u.extension = None;
        assert_eq!(
            u.endpoints_for("pbx", &sip, none),
            vec![("sip:alice@example.com".into(), Channel::Both)]
        );
        // A kind the user lacks is skipped for the next.
        let teams = Mapping::Kinds(vec![
            ("teams-upn".into(), Channel::Rich),
            ("email".into(), Channel::Rich),
        ]);
        assert_eq!(
            u.endpoints_for("t", &teams, none),
            vec![("Alice@Example.com".into(), Channel::Rich)]
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
        // The canonical form: what URL normalisers rewrite, case variants
        // and look-alikes are refused; plain names pass.
        for bad in [
            ".",
            "..",
            ".alice",
            "alice.",
            "Alice",
            "\u{430}lice",
            "e\u{301}",
            "a/b",
            "a%2e",
        ] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "a.b-c_d@example.com", "1001", "x"] {
            assert!(check_username(good).is_ok(), "{good:?}");
        }
        assert!(check_username("Alice").unwrap_err().contains("\"alice\""));
        let mut long = user();
        long.department = Some("d".repeat(257));
        assert_eq!(long.validate().unwrap_err().field, "department");
        let mut u = user();
        u.sip_uri_rich = Some("alice".into());
        assert_eq!(u.validate().unwrap_err().field, "sip_uri_rich");
        let mut u = user();
        u.email = Some("nope".into());
        assert_eq!(u.validate().unwrap_err().field, "email");
    }
}

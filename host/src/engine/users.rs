//! Users as operators configure them, and which endpoint of a user each
//! connector instance watches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A person whose presence the hub shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Identifier fields this user shares with others on purpose (a
    /// hunt-group extension, a shared mailbox): names from
    /// [`IDENTIFIER_FIELDS`]. Two users may hold the same value of an
    /// identifier only when both list it here; otherwise the second is
    /// refused (409), since both would show the same presence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
}

/// The user fields that identify a person to a presence source, so two
/// users holding the same value would show the same presence: refused
/// unless both list the field in [`User::shared`]. Compared without case
/// (and, for SIP URIs, without the `sip:`/`sips:` scheme; for numbers,
/// without spaces, dashes and brackets).
pub const IDENTIFIER_FIELDS: [&str; 6] = [
    "extension",
    "email",
    "sip_uri_rich",
    "sip_uri_telephony",
    "teams_upn",
    "lync_uri",
];

/// Two users holding one identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// The field, as [`IDENTIFIER_FIELDS`] names it.
    pub field: &'static str,
    /// The value as the user being checked has it.
    pub value: String,
    /// The other user holding it.
    pub other: String,
    /// Whether the other user lists the field as shared (then only this
    /// one does not).
    pub other_shares: bool,
}

impl std::fmt::Display for Clash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} is user {:?}'s already; two users with one {} show the same presence. \
             Remove it from one of them, or list \"{}\" in \"shared\" on both users{}",
            self.field,
            self.value,
            self.other,
            self.field,
            self.field,
            if self.other_shares {
                format!(" ({:?} does already)", self.other)
            } else {
                String::new()
            }
        )
    }
}

/// The identifiers of many users, to find clashes in time proportional
/// to the user checked.
#[derive(Debug, Default)]
pub struct IdentifierIndex {
    /// (field, normalised value) -> usernames holding it, with whether
    /// each shares it.
    by_value: std::collections::HashMap<(&'static str, String), Vec<(String, bool)>>,
}

impl IdentifierIndex {
    pub fn new<'a>(users: impl IntoIterator<Item = &'a User>) -> Self {
        let mut index = Self::default();
        for u in users {
            index.insert(u);
        }
        index
    }

    pub fn insert(&mut self, u: &User) {
        for (field, value) in u.identifiers() {
            self.by_value
                .entry((field, value))
                .or_default()
                .push((u.username.clone(), u.shares(field)));
        }
    }

    /// The first identifier `u` holds that another user holds too, where
    /// not both share it.
    pub fn clash(&self, u: &User) -> Option<Clash> {
        for (field, value) in u.identifiers() {
            let Some(holders) = self.by_value.get(&(field, value)) else {
                continue;
            };
            if let Some((other, other_shares)) = holders
                .iter()
                .find(|(name, shares)| *name != u.username && !(*shares && u.shares(field)))
            {
                return Some(Clash {
                    field,
                    value: u.raw_identifier(field).unwrap_or_default().to_string(),
                    other: other.clone(),
                    other_shares: *other_shares,
                });
            }
        }
        None
    }
}

/// The canonical form of an identifier for comparison.
fn normalise_identifier(field: &str, value: &str) -> String {
    let v = value.trim().to_lowercase();
    match field {
        "extension" => v
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
            .collect(),
        "sip_uri_rich" | "sip_uri_telephony" | "lync_uri" => v
            .strip_prefix("sips:")
            .or_else(|| v.strip_prefix("sip:"))
            .unwrap_or(&v)
            .to_string(),
        _ => v,
    }
}

/// How a bulk import treats users that exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// Only the columns (JSON: the fields) given change; the user's other
    /// attributes stay. An empty CSV cell clears its column's attribute.
    #[default]
    Merge,
    /// Each row replaces its user whole: attributes not given are cleared.
    Replace,
}

/// One row of a bulk import, parsed.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// 1-based, after the CSV header line (JSON: the array index + 1).
    pub row: usize,
    /// The CSV line the row starts on (the header is line 1).
    pub line: Option<u64>,
    /// The fields the row gives (CSV: the header's columns).
    pub columns: Vec<String>,
    /// The user, or the field at fault and why.
    pub user: Result<User, (String, String)>,
}

/// What an import did (or, when rejected, would have done) with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowResult {
    Created,
    Updated,
    Unchanged,
    Rejected,
}

/// One row's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowOutcome {
    pub row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub result: RowResult,
    /// Updated: the fields whose value changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Rejected: the field at fault and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a bulk import did: per row, and in sum. All or nothing: with any
/// row rejected, `applied` is false and nothing changed (the other rows
/// say what they would have done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub mode: ImportMode,
    pub applied: bool,
    /// Rows taken (created, updated or unchanged); 0 when not applied.
    pub imported: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// The rejected rows (also in `rows`), each with its reason.
    pub rejected: Vec<RowOutcome>,
    /// Users not in the file, deleted (`mode=replace&delete_missing=true`).
    pub deleted: Vec<String>,
    pub rows: Vec<RowOutcome>,
}

/// An import worked out: the report, the users to store and the users to
/// delete (both empty when a row was rejected).
#[derive(Debug)]
pub struct ImportPlan {
    pub report: ImportReport,
    pub put: Vec<User>,
    pub delete: Vec<String>,
}

/// Work out an import against the `existing` users. `delete_missing`
/// (only with [`ImportMode::Replace`]) deletes users the rows do not name.
pub fn plan_import(
    existing: &BTreeMap<String, User>,
    rows: Vec<ImportRow>,
    mode: ImportMode,
    delete_missing: bool,
) -> ImportPlan {
    let mut outcomes = Vec::new();
    let mut put: Vec<(usize, User)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let reject =
        |r: &ImportRow, username: Option<String>, field: String, error: String| RowOutcome {
            row: r.row,
            line: r.line,
            username,
            result: RowResult::Rejected,
            changed: Vec::new(),
            field: Some(field),
            error: Some(error),
        };
    for r in &rows {
        let given = match &r.user {
            Err((field, error)) => {
                outcomes.push(reject(r, None, field.clone(), error.clone()));
                continue;
            }
            Ok(u) => u,
        };
        let name = given.username.clone();
        if let Some(first) = seen.get(&name) {
            outcomes.push(reject(
                r,
                Some(name.clone()),
                "username".into(),
                format!("{name} appears twice in this import (first in row {first})"),
            ));
            continue;
        }
        seen.insert(name.clone(), r.row);
        let old = existing.get(&name);
        let new = match (mode, old) {
            (ImportMode::Merge, Some(old)) => merge_fields(old, given, &r.columns),
            _ => given.clone(),
        };
        if let Err(e) = new.validate() {
            outcomes.push(reject(r, Some(name), e.field, e.message));
            continue;
        }
        let (result, changed) = match old {
            None => (RowResult::Created, Vec::new()),
            Some(old) => {
                let changed = changed_fields(old, &new);
                if changed.is_empty() {
                    (RowResult::Unchanged, changed)
                } else {
                    (RowResult::Updated, changed)
                }
            }
        };
        outcomes.push(RowOutcome {
            row: r.row,
            line: r.line,
            username: Some(name),
            result,
            changed,
            field: None,
            error: None,
        });
        put.push((outcomes.len() - 1, new));
    }
    // Users after the import, for the identifier check.
    let delete: Vec<String> = if delete_missing && mode == ImportMode::Replace {
        existing
            .keys()
            .filter(|k| !seen.contains_key(*k))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut after: BTreeMap<&str, &User> = existing
        .iter()
        .filter(|(k, _)| !delete.contains(k))
        .map(|(k, u)| (k.as_str(), u))
        .collect();
    for (_, u) in &put {
        after.insert(u.username.as_str(), u);
    }
    let index = IdentifierIndex::new(after.values().copied());
    let row_of: BTreeMap<&str, usize> = rows
        .iter()
        .filter_map(|r| r.user.as_ref().ok().map(|u| (u.username.as_str(), r.row)))
        .collect();
    for (i, u) in &put {
        if let Some(c) = index.clash(u) {
            let mut error = c.to_string();
            if let Some(row) = row_of.get(c.other.as_str()) {
                error.push_str(&format!(" (row {row} of this import)"));
            }
            let o = &mut outcomes[*i];
            o.result = RowResult::Rejected;
            o.changed.clear();
            o.field = Some(c.field.to_string());
            o.error = Some(error);
        }
    }
    let count = |r: RowResult| outcomes.iter().filter(|o| o.result == r).count();
    let rejected: Vec<RowOutcome> = outcomes
        .iter()
        .filter(|o| o.result == RowResult::Rejected)
        .cloned()
        .collect();
    let applied = rejected.is_empty();
    let (created, updated, unchanged) = (
        count(RowResult::Created),
        count(RowResult::Updated),
        count(RowResult::Unchanged),
    );
    let report = ImportReport {
        mode,
        applied,
        imported: if applied {
            created + updated + unchanged
        } else {
            0
        },
        created,
        updated,
        unchanged,
        rejected,
        deleted: if applied { delete.clone() } else { Vec::new() },
        rows: outcomes,
    };
    if !applied {
        return ImportPlan {
            report,
            put: Vec::new(),
            delete: Vec::new(),
        };
    }
    let put = put
        .into_iter()
        .filter(|(i, _)| report.rows[*i].result != RowResult::Unchanged)
        .map(|(_, u)| u)
        .collect();
    ImportPlan {
        report,
        put,
        delete,
    }
}

/// `old` with the fields named in `columns` taken from `given` (a field
/// `given` leaves empty is cleared).
pub fn merge_fields(old: &User, given: &User, columns: &[String]) -> User {
    let to_map = |u: &User| match serde_json::to_value(u) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let mut out = to_map(old);
    let new = to_map(given);
    for c in columns {
        match new.get(c) {
            Some(v) => {
                out.insert(c.clone(), v.clone());
            }
            None => {
                out.remove(c);
            }
        }
    }
    serde_json::from_value(serde_json::Value::Object(out)).unwrap_or_else(|_| given.clone())
}

/// The fields whose value differs between two users, by their JSON names.
pub fn changed_fields(a: &User, b: &User) -> Vec<String> {
    let to_map = |u: &User| match serde_json::to_value(u) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (to_map(a), to_map(b));
    let absent = serde_json::Value::Null;
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            let norm = |v: Option<&serde_json::Value>| match v {
                None => absent.clone(),
                Some(serde_json::Value::Object(m)) if m.is_empty() => absent.clone(),
                Some(serde_json::Value::Array(l)) if l.is_empty() => absent.clone(),
                Some(v) => v.clone(),
            };
            norm(a.get(*k)) != norm(b.get(*k))
        })
        .cloned()
        .collect()
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
        for (i, f) in self.shared.iter().enumerate() {
            if !IDENTIFIER_FIELDS.contains(&f.as_str()) {
                return Err(err(
                    &format!("shared[{i}]"),
                    &format!(
                        "{f:?} is not an identifier field; shared takes: {}",
                        IDENTIFIER_FIELDS.join(", ")
                    ),
                ));
            }
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

    /// Whether this user lists `field` as shared.
    pub fn shares(&self, field: &str) -> bool {
        self.shared.iter().any(|f| f == field)
    }

    /// An identifier field's value as typed, if set.
    fn raw_identifier(&self, field: &str) -> Option<&str> {
        match field {
            "extension" => self.extension.as_deref(),
            "email" => self.email.as_deref(),
            "sip_uri_rich" => self.sip_uri_rich.as_deref(),
            "sip_uri_telephony" => self.sip_uri_telephony.as_deref(),
            "teams_upn" => self.teams_upn.as_deref(),
            "lync_uri" => self.lync_uri.as_deref(),
            _ => None,
        }
        .filter(|v| !v.trim().is_empty())
    }

    /// The user's identifiers, normalised for comparison.
    fn identifiers(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        IDENTIFIER_FIELDS.into_iter().filter_map(|f| {
            self.raw_identifier(f)
                .map(|v| (f, normalise_identifier(f, v)))
        })
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

    fn named(name: &str, ext: &str) -> User {
        User {
            username: name.into(),
            extension: Some(ext.into()),
            ..Default::default()
        }
    }

    fn row(row: usize, user: User, columns: &[&str]) -> ImportRow {
        ImportRow {
            row,
            line: Some(row as u64 + 1),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            user: Ok(user),
        }
    }

    #[test]
    fn identifiers_clash_unless_both_share() {
        let mut a = named("alice", "1001");
        a.sip_uri_rich = Some("sip:Alice@example.com".into());
        let index = IdentifierIndex::new([&a]);
        let b = named("bob", "10-01");
        let c = index.clash(&b).unwrap();
        assert_eq!((c.field, c.other.as_str()), ("extension", "alice"));
        assert!(c.to_string().contains("\"shared\""), "{c}");
        let mut b = named("bob", "1002");
        b.sip_uri_rich = Some("alice@example.com".into());
        assert_eq!(index.clash(&b).unwrap().field, "sip_uri_rich");
        // Oneself is no clash.
        assert_eq!(index.clash(&a), None);
        // Shared by one only: still refused; by both: taken.
        let mut b = named("bob", "1001");
        b.shared = vec!["extension".into()];
        assert!(index.clash(&b).is_some());
        a.shared = vec!["extension".into()];
        let index = IdentifierIndex::new([&a]);
        assert_eq!(index.clash(&b), None);
        b.shared = vec!["nonsense".into()];
        assert_eq!(b.validate().unwrap_err().field, "shared[0]");
    }

    #[test]
    fn merge_import_changes_only_the_given_columns() {
        let mut carol = named("carol", "1003");
        carol.display_name = "Carol".into();
        carol.email = Some("carol@example.com".into());
        let existing = BTreeMap::from([("carol".to_string(), carol.clone())]);
        // The same extension again: unchanged, nothing else erased.
        let plan = plan_import(
            &existing,
            vec![row(1, named("carol", "1003"), &["username", "extension"])],
            ImportMode::Merge,
            false,
        );
        assert_eq!(plan.report.rows[0].result, RowResult::Unchanged);
        assert!(plan.put.is_empty());
        // A new extension: updated, the email and name kept.
        let plan = plan_import(
            &existing,
            vec![
                row(1, named("carol", "1013"), &["username", "extension"]),
                row(2, named("dave", "1004"), &["username", "extension"]),
            ],
            ImportMode::Merge,
            false,
        );
        assert_eq!(plan.report.rows[0].result, RowResult::Updated);
        assert_eq!(plan.report.rows[0].changed, vec!["extension".to_string()]);
        assert_eq!(plan.report.rows[1].result, RowResult::Created);
        assert_eq!(plan.put[0].email.as_deref(), Some("carol@example.com"));
        assert_eq!(plan.put[0].display_name, "Carol");
        // Replace: the row is the user.
        let plan = plan_import(
            &existing,
            vec![row(1, named("carol", "1003"), &["username", "extension"])],
            ImportMode::Replace,
            true,
        );
        assert_eq!(plan.report.rows[0].result, RowResult::Updated);
        assert_eq!(plan.put[0].email, None);
        // A clash within the import rejects the whole import.
        let plan = plan_import(
            &existing,
            vec![
                row(1, named("erin", "2000"), &["username", "extension"]),
                row(2, named("finn", "2000"), &["username", "extension"]),
            ],
            ImportMode::Merge,
            false,
        );
        assert!(!plan.report.applied);
        assert!(plan.put.is_empty());
        assert_eq!(plan.report.rejected.len(), 2);
        assert!(
            plan.report.rows[0]
                .error
                .as_ref()
                .unwrap()
                .contains("row 2")
        );
    }

    #[test]
    fn replace_import_deletes_only_when_asked() {
        let existing = BTreeMap::from([
            ("ann".to_string(), named("ann", "1")),
            ("ben".to_string(), named("ben", "2")),
        ]);
        let rows = || vec![row(1, named("ann", "1"), &["username", "extension"])];
        let plan = plan_import(&existing, rows(), ImportMode::Replace, false);
        assert!(plan.delete.is_empty());
        let plan = plan_import(&existing, rows(), ImportMode::Replace, true);
        assert_eq!(plan.delete, vec!["ben".to_string()]);
        assert_eq!(plan.report.deleted, vec!["ben".to_string()]);
        // Merge never deletes.
        let plan = plan_import(&existing, rows(), ImportMode::Merge, true);
        assert!(plan.delete.is_empty());
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

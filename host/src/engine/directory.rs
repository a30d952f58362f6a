//! Directory sync policy: which directory attribute fills which user field,
//! how entries become import rows, and which users a sync may remove.
//!
//! Two kinds of directory feed it: LDAP / Active Directory (entries from
//! [`crate::io::ldap`], mapped by [`Mapping`]) and a connector instance's
//! own directory (the entries a plugin reports with `directory`, matched to
//! users by email: [`plan_connector_sync`]).
//!
//! Pure: the plan is the user import's ([`super::users::plan_import`],
//! merge mode for the fields the sync owns). Users a sync creates carry the
//! attribute [`MARKER_ATTRIBUTE`]: [`MARKER_LDAP`] for LDAP, the instance's
//! id for a connector's directory. Only users with the sync's own marker
//! are ever removed when their entry leaves the directory, never users made
//! by hand, imported from CSV or made by another sync.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DirectoryEntry;
use super::users::{ImportMode, ImportReport, ImportRow, RowOutcome, RowResult, User};
use crate::io::ldap::LdapEntry;

/// The user attribute that marks users the directory sync created.
pub const MARKER_ATTRIBUTE: &str = "directory";
/// Its value for LDAP / Active Directory.
pub const MARKER_LDAP: &str = "ldap";

/// The user fields a directory attribute may fill.
pub const MAPPABLE_FIELDS: [&str; 9] = [
    "username",
    "display_name",
    "email",
    "extension",
    "department",
    "teams_upn",
    "sip_uri_rich",
    "sip_uri_telephony",
    "lync_uri",
];

/// Directory attribute per user field. `username` is required; a field
/// left out is not touched by the sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Directory attribute → user field, e.g. `{"username": "uid",
    /// "display_name": "cn", "email": "mail", "extension": "telephoneNumber"}`.
    pub fields: BTreeMap<String, String>,
    /// Extension normalisation: keep only the digits after this prefix
    /// (`+49 89 1234-` turns `+49 89 1234-567` into `567`); entries whose
    /// number does not start with it keep all their digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_prefix: Option<String>,
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            fields: [
                ("username", "uid"),
                ("display_name", "cn"),
                ("email", "mail"),
                ("extension", "telephoneNumber"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
            extension_prefix: None,
        }
    }
}

impl Mapping {
    /// `Err((field path, why))` for a mapping that cannot work.
    pub fn check(&self) -> Result<(), (String, String)> {
        if !self.fields.contains_key("username") {
            return Err((
                "mapping.fields.username".into(),
                "required: the directory attribute that gives the username (uid, sAMAccountName)"
                    .into(),
            ));
        }
        for (field, attr) in &self.fields {
            if !MAPPABLE_FIELDS.contains(&field.as_str()) {
                return Err((
                    format!("mapping.fields.{field}"),
                    format!(
                        "not a mappable user field; one of {}",
                        MAPPABLE_FIELDS.join(", ")
                    ),
                ));
            }
            // RFC 4512 §2.5: a descriptor (letters, digits, '-') or an OID.
            if attr.is_empty()
                || attr.len() > 128
                || !attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err((
                    format!("mapping.fields.{field}"),
                    "an LDAP attribute name: letters, digits, '-' (or an OID)".into(),
                ));
            }
        }
        Ok(())
    }

    /// The directory attributes to ask for.
    pub fn attributes(&self) -> Vec<String> {
        let mut a: Vec<String> = self.fields.values().cloned().collect();
        a.sort();
        a.dedup();
        a
    }
}

/// Keep the digits of a phone number after `prefix` (compared on digits
/// only, so `+49 89 1234-` and `+4989 1234` are one prefix).
pub fn normalise_extension(number: &str, prefix: Option<&str>) -> String {
    let digits: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
    match prefix {
        Some(p) => {
            let p: String = p.chars().filter(|c| c.is_ascii_digit()).collect();
            digits
                .strip_prefix(p.as_str())
                .map(str::to_string)
                .unwrap_or(digits)
        }
        None => number.trim().to_string(),
    }
}

/// Which directory entry a user came from: an LDAP entry's DN, or a
/// connector directory's endpoint id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl EntryRef {
    fn dn(dn: &str) -> Self {
        Self {
            dn: Some(dn.into()),
            endpoint: None,
        }
    }

    fn endpoint(e: &str) -> Self {
        Self {
            dn: None,
            endpoint: Some(e.into()),
        }
    }

    fn name(&self) -> &str {
        self.dn
            .as_deref()
            .or(self.endpoint.as_deref())
            .unwrap_or_default()
    }
}

/// An entry that gives no valid user: the entry, the field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryRejected {
    #[serde(flatten)]
    pub entry: EntryRef,
    pub field: String,
    pub error: String,
}

/// One entry as a user: the user, or why it cannot be one.
pub fn entry_to_user(entry: &LdapEntry, mapping: &Mapping) -> Result<User, EntryRejected> {
    let reject = |field: &str, error: String| EntryRejected {
        entry: EntryRef::dn(&entry.dn),
        field: field.into(),
        error,
    };
    let value = |field: &str| -> Option<String> {
        let attr = mapping.fields.get(field)?.to_ascii_lowercase();
        entry
            .attributes
            .get(&attr)
            .and_then(|v| v.first())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let raw_name = value("username").ok_or_else(|| {
        reject(
            "username",
            format!(
                "the entry has no {} attribute",
                mapping.fields.get("username").map_or("", String::as_str)
            ),
        )
    })?;
    // The hub's canonical form is lower case (directories compare
    // usernames without case: uid and sAMAccountName).
    let username = raw_name.to_lowercase();
    if let Err(e) = super::users::check_username(&username) {
        return Err(reject("username", format!("{raw_name:?}: {e}")));
    }
    let strip_sip = |v: String| {
        v.strip_prefix("sip:")
            .or_else(|| v.strip_prefix("SIP:"))
            .map(str::to_string)
            .unwrap_or(v)
    };
    let user = User {
        username,
        display_name: value("display_name").unwrap_or_default(),
        department: value("department"),
        email: value("email"),
        extension: value("extension")
            .map(|n| normalise_extension(&n, mapping.extension_prefix.as_deref()))
            .filter(|n| !n.is_empty()),
        teams_upn: value("teams_upn"),
        sip_uri_rich: value("sip_uri_rich").map(strip_sip),
        sip_uri_telephony: value("sip_uri_telephony").map(strip_sip),
        lync_uri: value("lync_uri").map(strip_sip),
        ..User::default()
    };
    if let Err(e) = user.validate() {
        return Err(reject(&e.field, e.message));
    }
    Ok(user)
}

/// What a sync does with users the sync made whose entry is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Removal {
    /// Delete them.
    #[default]
    Delete,
    /// Only list them in the report.
    Report,
}

/// A sync worked out: the import rows for the valid entries, the entries
/// rejected, users left alone, and the users the sync made that the
/// directory no longer has.
#[derive(Debug, Default)]
pub struct SyncInput {
    pub rows: Vec<ImportRow>,
    pub rejected: Vec<EntryRejected>,
    /// The entry per username, to name entries in the report.
    pub entries: BTreeMap<String, EntryRef>,
    /// Entries whose person is a user the sync did not make (matched by
    /// email): left as they are. Username and the entry.
    pub matched: Vec<(String, EntryRef)>,
    pub gone: Vec<String>,
}

/// Turn `entries` into import rows against the `existing` users. A new
/// user gets the marker; an existing one only the mapped fields (merge),
/// so a user made by hand stays one. Two entries giving one username:
/// the second is rejected.
pub fn plan_sync(
    existing: &BTreeMap<String, User>,
    entries: &[LdapEntry],
    mapping: &Mapping,
) -> SyncInput {
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut dns: BTreeMap<String, EntryRef> = BTreeMap::new();
    let mapped: Vec<String> = mapping
        .fields
        .keys()
        .filter(|f| *f != "username")
        .cloned()
        .collect();
    for entry in entries {
        let mut user = match entry_to_user(entry, mapping) {
            Ok(u) => u,
            Err(r) => {
                rejected.push(r);
                continue;
            }
        };
        if let Some(first) = dns.get(&user.username) {
            rejected.push(EntryRejected {
                entry: EntryRef::dn(&entry.dn),
                field: "username".into(),
                error: format!("{} is also the username of {}", user.username, first.name()),
            });
            continue;
        }
        dns.insert(user.username.clone(), EntryRef::dn(&entry.dn));
        let mut columns = mapped.clone();
        if !existing.contains_key(&user.username) {
            user.attributes
                .insert(MARKER_ATTRIBUTE.into(), MARKER_LDAP.into());
            columns.push("attributes".into());
        }
        rows.push(ImportRow {
            row: rows.len() + 1,
            line: None,
            columns,
            user: Ok(user),
        });
    }
    let gone = existing
        .values()
        .filter(|u| made_by(u, MARKER_LDAP) && !dns.contains_key(&u.username))
        .map(|u| u.username.clone())
        .collect();
    SyncInput {
        rows,
        rejected,
        entries: dns,
        matched: Vec::new(),
        gone,
    }
}

/// Whether the LDAP directory sync created this user.
pub fn made_by_sync(u: &User) -> bool {
    made_by(u, MARKER_LDAP)
}

/// Whether the sync with this marker ([`MARKER_LDAP`], or a connector
/// instance's id) created this user.
pub fn made_by(u: &User, marker: &str) -> bool {
    u.attributes.get(MARKER_ATTRIBUTE).map(String::as_str) == Some(marker)
}

/// The users made by the syncs of connector instances that are gone
/// (`gone(instance)`), as they stay: they are people, so they are kept,
/// but without the sync's marker and the `endpoints.<instance>` entry the
/// sync gave them. So a later instance given the same id does not take
/// them over silently (its sync lists them as `matched`, by email), and no
/// user points at an instance that no longer exists. Users made by hand,
/// imported, or made by the LDAP sync are never returned: an `endpoints`
/// entry an operator wrote is the operator's own.
pub fn released(existing: &BTreeMap<String, User>, gone: impl Fn(&str) -> bool) -> Vec<User> {
    existing
        .values()
        .filter_map(|u| {
            let marker = u.attributes.get(MARKER_ATTRIBUTE)?;
            if marker == MARKER_LDAP || !gone(marker) {
                return None;
            }
            let mut u = u.clone();
            let instance = u.attributes.remove(MARKER_ATTRIBUTE)?;
            u.endpoints.remove(&instance);
            Some(u)
        })
        .collect()
}

/// Where a connector directory sync takes a new user's username from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UsernameFrom {
    /// The email's local part (`ann.meyer` of `Ann.Meyer@corp.example`),
    /// or the whole email where the local part is taken or no valid
    /// username.
    #[default]
    LocalPart,
    /// The whole email, lower-cased.
    Email,
}

/// The username for a new user with this email that is not in `taken`
/// (compared lower-cased), or why there is none.
fn username_for(
    email: &str,
    from: UsernameFrom,
    taken: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let whole = email.trim().to_lowercase();
    let mut tried = Vec::new();
    if from == UsernameFrom::LocalPart
        && let Some((local, _)) = whole.split_once('@')
    {
        tried.push(local.to_string());
    }
    tried.push(whole);
    let mut why = String::new();
    for name in &tried {
        match super::users::check_username(name) {
            Err(e) => why = format!("{name:?}: {e}"),
            Ok(()) if taken(name) => why = format!("{name:?} is another user's username"),
            Ok(()) => return Ok(name.clone()),
        }
    }
    Err(why)
}

/// Plan a sync of users with connector instance `instance`'s directory,
/// people matched by email (compared without case):
/// - an entry whose person is a user this sync made (marker `directory:
///   <instance>`; found by the endpoint in the user's `endpoints.<instance>`,
///   else by email) is updated: display name, email and that endpoint;
/// - an entry whose email a user the sync did not make holds is left
///   alone (`matched`): the hub maps that user by email already;
/// - any other entry with an email becomes a new user: username per
///   `from`, display name (else the email), email, `endpoints.<instance>`
///   = the entry's endpoint, and the marker;
/// - entries without an email, or with one another entry has, are
///   rejected; users the sync made whose entry is gone are `gone`.
pub fn plan_connector_sync(
    existing: &BTreeMap<String, User>,
    instance: &str,
    entries: &[DirectoryEntry],
    from: UsernameFrom,
) -> SyncInput {
    let mut input = SyncInput::default();
    let ours = |u: &User| made_by(u, instance);
    let by_endpoint: BTreeMap<&str, &User> = existing
        .values()
        .filter(|u| ours(u))
        .filter_map(|u| u.endpoints.get(instance).map(|e| (e.as_str(), u)))
        .collect();
    let by_email: BTreeMap<String, &User> = existing
        .values()
        .filter_map(|u| u.email.as_ref().map(|e| (e.trim().to_lowercase(), u)))
        .collect();
    // Emails and usernames of this run, so two entries never become one
    // user nor two users one name.
    let mut seen_email: BTreeMap<String, String> = BTreeMap::new();
    let mut new_names: std::collections::BTreeSet<String> = Default::default();
    for e in entries {
        let reject = |field: &str, error: String| EntryRejected {
            entry: EntryRef::endpoint(&e.endpoint),
            field: field.into(),
            error,
        };
        let Some(email) = e.email.as_deref().map(str::trim).filter(|m| !m.is_empty()) else {
            input.rejected.push(reject(
                "email",
                "the entry has no email; people are matched by email".into(),
            ));
            continue;
        };
        let key = email.to_lowercase();
        if let Some(first) = seen_email.get(&key) {
            input.rejected.push(reject(
                "email",
                format!("{email} is also the email of entry {first}"),
            ));
            continue;
        }
        seen_email.insert(key.clone(), e.endpoint.clone());
        let holder = by_email.get(&key).copied();
        let mine = by_endpoint
            .get(e.endpoint.as_str())
            .copied()
            .or(holder.filter(|u| ours(u)));
        if let Some(old) = mine {
            if let Some(h) = holder.filter(|h| h.username != old.username) {
                input.rejected.push(reject(
                    "email",
                    format!(
                        "{email} is user {:?}'s already; {:?} keeps its old email",
                        h.username, old.username
                    ),
                ));
                input
                    .entries
                    .insert(old.username.clone(), EntryRef::endpoint(&e.endpoint));
                continue;
            }
            let mut user = old.clone();
            let mut columns = vec!["email".to_string(), "endpoints".to_string()];
            user.email = Some(email.to_string());
            user.endpoints
                .insert(instance.to_string(), e.endpoint.clone());
            if let Some(name) = e
                .display_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                user.display_name = name.to_string();
                columns.push("display_name".into());
            }
            input
                .entries
                .insert(user.username.clone(), EntryRef::endpoint(&e.endpoint));
            input.rows.push(ImportRow {
                row: input.rows.len() + 1,
                line: None,
                columns,
                user: Ok(user),
            });
            continue;
        }
        if let Some(h) = holder {
            input
                .matched
                .push((h.username.clone(), EntryRef::endpoint(&e.endpoint)));
            continue;
        }
        let username = match username_for(email, from, |n| {
            existing.contains_key(n) || new_names.contains(n)
        }) {
            Ok(n) => n,
            Err(why) => {
                input.rejected.push(reject("username", why));
                continue;
            }
        };
        new_names.insert(username.clone());
        let mut user = User {
            username: username.clone(),
            display_name: e
                .display_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or(email)
                .to_string(),
            email: Some(email.to_string()),
            ..User::default()
        };
        user.endpoints
            .insert(instance.to_string(), e.endpoint.clone());
        user.attributes
            .insert(MARKER_ATTRIBUTE.into(), instance.to_string());
        if let Err(err) = user.validate() {
            input.rejected.push(reject(&err.field, err.message));
            continue;
        }
        input
            .entries
            .insert(username, EntryRef::endpoint(&e.endpoint));
        input.rows.push(ImportRow {
            row: input.rows.len() + 1,
            line: None,
            columns: Vec::new(),
            user: Ok(user),
        });
    }
    input.gone = existing
        .values()
        .filter(|u| ours(u) && !input.entries.contains_key(&u.username))
        .map(|u| u.username.clone())
        .collect();
    input
}

/// Per user, what the sync did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncAction {
    Created,
    Updated,
    Unchanged,
    Rejected,
    Deleted,
    /// Gone from the directory, kept (`remove: report`, or a dry run of it).
    Missing,
    /// A connector directory's person who is a user the sync did not make
    /// (the same email): left as they are.
    Matched,
}

/// One user's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub action: SyncAction,
    /// The LDAP entry (`dn`) or the connector directory's `endpoint`.
    #[serde(flatten)]
    pub entry: EntryRef,
    /// Updated: the fields that changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a sync did (`dry_run: false`) or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub dry_run: bool,
    /// Whether the users changed (false for a dry run, and when a row
    /// clashed with another user: then nothing changed).
    pub applied: bool,
    pub entries: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: usize,
    pub deleted: usize,
    /// Gone from the directory but kept.
    pub missing: usize,
    /// People of a connector's directory who are users the sync did not
    /// make: left alone.
    pub matched: usize,
    pub users: Vec<SyncUser>,
}

/// The sync report from the import's report, the entries rejected before
/// it and the users gone from the directory (`deleting`: whether they are,
/// or in a dry run would be, deleted).
pub fn report(
    dry_run: bool,
    entries: usize,
    import: &ImportReport,
    input: &SyncInput,
    deleting: bool,
) -> SyncReport {
    let mut users: Vec<SyncUser> = input
        .rejected
        .iter()
        .map(|r| SyncUser {
            username: None,
            action: SyncAction::Rejected,
            entry: r.entry.clone(),
            changed: Vec::new(),
            field: Some(r.field.clone()),
            error: Some(r.error.clone()),
        })
        .collect();
    users.extend(input.matched.iter().map(|(u, e)| SyncUser {
        username: Some(u.clone()),
        action: SyncAction::Matched,
        entry: e.clone(),
        changed: Vec::new(),
        field: None,
        error: None,
    }));
    users.extend(import.rows.iter().map(|o: &RowOutcome| {
        SyncUser {
            entry: o
                .username
                .as_ref()
                .and_then(|u| input.entries.get(u).cloned())
                .unwrap_or_default(),
            username: o.username.clone(),
            action: match o.result {
                RowResult::Created => SyncAction::Created,
                RowResult::Updated => SyncAction::Updated,
                RowResult::Unchanged => SyncAction::Unchanged,
                RowResult::Rejected => SyncAction::Rejected,
            },
            changed: o.changed.clone(),
            field: o.field.clone(),
            error: o.error.clone(),
        }
    }));
    let import_ok = import.rejected.is_empty();
    users.extend(input.gone.iter().map(|u| SyncUser {
        username: Some(u.clone()),
        action: if deleting && import_ok {
            SyncAction::Deleted
        } else {
            SyncAction::Missing
        },
        entry: EntryRef::default(),
        changed: Vec::new(),
        field: None,
        error: None,
    }));
    let count = |a: SyncAction| users.iter().filter(|u| u.action == a).count();
    SyncReport {
        dry_run,
        applied: !dry_run && import_ok,
        entries,
        created: count(SyncAction::Created),
        updated: count(SyncAction::Updated),
        unchanged: count(SyncAction::Unchanged),
        rejected: count(SyncAction::Rejected),
        deleted: count(SyncAction::Deleted),
        missing: count(SyncAction::Missing),
        matched: count(SyncAction::Matched),
        users,
    }
}

/// The import mode a sync uses: merge, so fields the mapping leaves out
/// (and an operator's own attributes) stay.
pub const SYNC_MODE: ImportMode = ImportMode::Merge;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &str)]) -> LdapEntry {
        LdapEntry {
            dn: dn.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), vec![v.to_string()]))
                .collect(),
        }
    }

    #[test]
    fn ad_entry_maps_to_a_user() {
        let mut m = Mapping::default();
        m.fields.insert("username".into(), "sAMAccountName".into());
        m.fields
            .insert("sip_uri_rich".into(), "msRTCSIP-PrimaryUserAddress".into());
        m.extension_prefix = Some("+49 89 1234-".into());
        let u = entry_to_user(
            &entry(
                "CN=Ann,DC=corp",
                &[
                    ("sAMAccountName", "AMeyer"),
                    ("cn", "Ann Meyer"),
                    ("telephoneNumber", "+49 89 1234-567"),
                    ("msRTCSIP-PrimaryUserAddress", "sip:ann@corp.example"),
                ],
            ),
            &m,
        )
        .unwrap();
        assert_eq!(u.username, "ameyer");
        assert_eq!(u.extension.as_deref(), Some("567"));
        assert_eq!(u.sip_uri_rich.as_deref(), Some("ann@corp.example"));
        let bad = entry_to_user(&entry("CN=X,DC=corp", &[("sAMAccountName", "Zoë")]), &m);
        assert_eq!(bad.unwrap_err().entry.dn.as_deref(), Some("CN=X,DC=corp"));
    }

    #[test]
    fn only_users_the_sync_made_are_gone() {
        let mut existing = BTreeMap::new();
        let mut synced = User {
            username: "old".into(),
            ..User::default()
        };
        synced
            .attributes
            .insert(MARKER_ATTRIBUTE.into(), MARKER_LDAP.into());
        existing.insert("old".into(), synced);
        existing.insert(
            "byhand".into(),
            User {
                username: "byhand".into(),
                ..User::default()
            },
        );
        let input = plan_sync(&existing, &[], &Mapping::default());
        assert_eq!(input.gone, vec!["old".to_string()]);
    }

    fn dir_entry(ep: &str, email: Option<&str>, name: &str) -> DirectoryEntry {
        DirectoryEntry {
            endpoint: ep.into(),
            email: email.map(str::to_string),
            display_name: Some(name.into()),
            extension: None,
        }
    }

    fn users(list: Vec<User>) -> BTreeMap<String, User> {
        list.into_iter().map(|u| (u.username.clone(), u)).collect()
    }

    #[test]
    fn connector_directory_creates_matches_updates_and_finds_gone() {
        let mut mine = User {
            username: "old".into(),
            display_name: "Old Name".into(),
            email: Some("old@corp.example".into()),
            ..User::default()
        };
        mine.endpoints.insert("rc".into(), "7".into());
        mine.attributes.insert(MARKER_ATTRIBUTE.into(), "rc".into());
        let mut left = mine.clone();
        left.username = "left".into();
        left.email = Some("left@corp.example".into());
        left.endpoints.insert("rc".into(), "8".into());
        let by_hand = User {
            username: "dora".into(),
            email: Some("Dora@Corp.example".into()),
            ..User::default()
        };
        // An LDAP user named like a new person's local part.
        let mut ldap = User {
            username: "ann".into(),
            email: Some("ann@elsewhere.example".into()),
            ..User::default()
        };
        ldap.attributes
            .insert(MARKER_ATTRIBUTE.into(), MARKER_LDAP.into());
        let existing = users(vec![mine, left, by_hand, ldap]);
        let entries = vec![
            dir_entry("1", Some("Ann@Corp.example"), "Ann Meyer"),
            dir_entry("2", Some("dora@corp.example"), "Dora Hand"),
            dir_entry("7", Some("old@corp.example"), "New Name"),
            dir_entry("9", None, "Sales queue"),
            dir_entry("10", Some("bob@corp.example"), "Bob"),
            dir_entry("11", Some("BOB@corp.example"), "Bob again"),
        ];
        let input = plan_connector_sync(&existing, "rc", &entries, UsernameFrom::LocalPart);
        let created: Vec<&User> = input
            .rows
            .iter()
            .filter_map(|r| r.user.as_ref().ok())
            .filter(|u| !existing.contains_key(&u.username))
            .collect();
        // "ann" is taken (by the LDAP user): the whole email instead.
        assert_eq!(
            created
                .iter()
                .map(|u| u.username.as_str())
                .collect::<Vec<_>>(),
            ["ann@corp.example", "bob"]
        );
        assert_eq!(
            created[0].endpoints.get("rc").map(String::as_str),
            Some("1")
        );
        assert!(made_by(created[0], "rc") && !made_by(created[0], MARKER_LDAP));
        assert_eq!(created[0].display_name, "Ann Meyer");
        // The user made by hand is only matched, never a row.
        assert_eq!(
            input.matched,
            vec![("dora".to_string(), EntryRef::endpoint("2"))]
        );
        let old = input
            .rows
            .iter()
            .filter_map(|r| r.user.as_ref().ok())
            .find(|u| u.username == "old")
            .unwrap();
        assert_eq!(old.display_name, "New Name");
        let rejected: Vec<(&str, &str)> = input
            .rejected
            .iter()
            .map(|r| (r.entry.name(), r.field.as_str()))
            .collect();
        assert_eq!(rejected, [("9", "email"), ("11", "email")]);
        assert_eq!(input.gone, ["left".to_string()]);
        // Planned with the import: two created, one updated.
        let plan =
            super::super::users::plan_import(&existing, input.rows.clone(), SYNC_MODE, false);
        assert!(plan.report.applied, "{:?}", plan.report);
        assert_eq!((plan.report.created, plan.report.updated), (2, 1));
        let r = report(true, entries.len(), &plan.report, &input, true);
        assert_eq!((r.matched, r.rejected, r.deleted), (1, 2, 1));
    }

    #[test]
    fn a_gone_instance_releases_only_the_users_its_sync_made() {
        let made = |name: &str, marker: &str| {
            let mut u = User {
                username: name.into(),
                email: Some(format!("{name}@corp.example")),
                ..User::default()
            };
            u.attributes.insert(MARKER_ATTRIBUTE.into(), marker.into());
            u.attributes.insert("acme-badge".into(), "7".into());
            u.endpoints.insert(marker.into(), "101".into());
            u.endpoints.insert("pbx".into(), "2001".into());
            u
        };
        let mut by_hand = User {
            username: "dora".into(),
            ..User::default()
        };
        by_hand.endpoints.insert("rc".into(), "104".into());
        let existing = users(vec![
            made("ann", "rc"),
            made("bob", "teams"),
            made("lee", MARKER_LDAP),
            by_hand,
        ]);
        let out = released(&existing, |i| i == "rc" || i == MARKER_LDAP);
        assert_eq!(out.len(), 1, "{out:?}");
        let ann = &out[0];
        assert_eq!(ann.username, "ann");
        assert!(!ann.attributes.contains_key(MARKER_ATTRIBUTE));
        assert_eq!(ann.attributes["acme-badge"], "7");
        assert_eq!(
            ann.endpoints,
            BTreeMap::from([("pbx".to_string(), "2001".to_string())])
        );
        assert_eq!(ann.email.as_deref(), Some("ann@corp.example"));
        // Released users are the import's to store as they are.
        let rows = out
            .iter()
            .enumerate()
            .map(|(i, u)| ImportRow {
                row: i + 1,
                line: None,
                columns: Vec::new(),
                user: Ok(u.clone()),
            })
            .collect();
        let plan = super::super::users::plan_import(&existing, rows, ImportMode::Replace, false);
        assert!(plan.report.applied && plan.report.updated == 1);
        assert!(released(&existing, |_| false).is_empty());
    }

    #[test]
    fn username_falls_back_to_the_email() {
        let none = |_: &str| false;
        assert_eq!(
            username_for("A.B@x.example", UsernameFrom::LocalPart, none).unwrap(),
            "a.b"
        );
        assert_eq!(
            username_for("a+b@x.example", UsernameFrom::LocalPart, none).unwrap_err(),
            "\"a+b@x.example\": lowercase ASCII letters, digits, '.', '_', '-' or '@' (names in other scripts go in display_name)"
        );
        assert_eq!(
            username_for("A@x.example", UsernameFrom::Email, none).unwrap(),
            "a@x.example"
        );
        assert!(
            username_for("a@x.example", UsernameFrom::LocalPart, |n| n
                .starts_with('a'))
            .is_err()
        );
    }
}

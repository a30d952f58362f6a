//! Directory sync policy: which directory attribute fills which user field,
//! how entries become import rows, and which users a sync may remove.
//!
//! Pure: the entries come from [`crate::io::ldap`]; the plan is the user
//! import's ([`super::users::plan_import`], merge mode for the mapped
//! fields). Users the sync creates carry the attribute
//! [`MARKER_ATTRIBUTE`]` = `[`MARKER_LDAP`]; only those are ever removed
//! when their entry leaves the directory, never users made by hand or
//! imported from CSV (even when the directory updates their fields).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// An entry that gives no valid user: its DN, the field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EntryRejected {
    pub dn: String,
    pub field: String,
    pub error: String,
}

/// One entry as a user: the user, or why it cannot be one.
pub fn entry_to_user(entry: &LdapEntry, mapping: &Mapping) -> Result<User, EntryRejected> {
    let reject = |field: &str, error: String| EntryRejected {
        dn: entry.dn.clone(),
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
/// rejected, and the users the sync made that the directory no longer has.
#[derive(Debug)]
pub struct SyncInput {
    pub rows: Vec<ImportRow>,
    pub rejected: Vec<EntryRejected>,
    /// DN per username, to name entries in the report.
    pub dns: BTreeMap<String, String>,
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
    let mut dns: BTreeMap<String, String> = BTreeMap::new();
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
                dn: entry.dn.clone(),
                field: "username".into(),
                error: format!("{} is also the username of {first}", user.username),
            });
            continue;
        }
        dns.insert(user.username.clone(), entry.dn.clone());
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
        .filter(|u| made_by_sync(u) && !dns.contains_key(&u.username))
        .map(|u| u.username.clone())
        .collect();
    SyncInput {
        rows,
        rejected,
        dns,
        gone,
    }
}

/// Whether the directory sync created this user.
pub fn made_by_sync(u: &User) -> bool {
    u.attributes.get(MARKER_ATTRIBUTE).map(String::as_str) == Some(MARKER_LDAP)
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
}

/// One user's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncUser {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub action: SyncAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
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
            dn: Some(r.dn.clone()),
            changed: Vec::new(),
            field: Some(r.field.clone()),
            error: Some(r.error.clone()),
        })
        .collect();
    users.extend(import.rows.iter().map(|o: &RowOutcome| SyncUser {
        dn: o.username.as_ref().and_then(|u| input.dns.get(u).cloned()),
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
    }));
    let import_ok = import.rejected.is_empty();
    users.extend(input.gone.iter().map(|u| SyncUser {
        username: Some(u.clone()),
        action: if deleting && import_ok {
            SyncAction::Deleted
        } else {
            SyncAction::Missing
        },
        dn: None,
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
        assert_eq!(bad.unwrap_err().dn, "CN=X,DC=corp");
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
}

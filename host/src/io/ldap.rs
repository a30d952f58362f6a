//! An LDAP client for directory sync (LDAP / Active Directory): simple
//! bind, a subtree (or one-level, base) search with a filter, paged by the
//! simple paged results control (RFC 2696; Active Directory answers at
//! most 1000 entries a page, `MaxPageSize`). I/O only: what the entries
//! mean is [`crate::engine::directory`]'s.
//!
//! `ldap://` (optionally upgraded with StartTLS, RFC 4511 §4.14) and
//! `ldaps://` are spoken by the `ldap3` crate; its TLS is rustls with ring
//! (no OpenSSL), verified against the system's root certificates, or, with
//! a private CA given, against the Mozilla roots plus that CA
//! ([`crate::io::tls::client_config`], as connectors' `tls_ca_pem`). The
//! server's name (host name or IP address of the URL) must be in its
//! certificate.

use std::collections::BTreeMap;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};

/// Where and how to search.
#[derive(Debug, Clone)]
pub struct LdapQuery {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub starttls: bool,
    /// PEM certificates of a private CA to trust besides the public roots.
    pub ca_pem: Option<String>,
    /// Empty for an anonymous bind.
    pub bind_dn: String,
    pub bind_password: String,
    pub base_dn: String,
    /// `sub`, `one` or `base` (RFC 4516's names).
    pub scope: String,
    /// An RFC 4515 filter, such as `(objectClass=inetOrgPerson)`.
    pub filter: String,
    /// The attributes to read (empty: all user attributes).
    pub attributes: Vec<String>,
    /// Entries per page (RFC 2696 `size`).
    pub page_size: i32,
    /// The whole exchange (connect, bind, every page) gives up after this.
    pub timeout: Duration,
}

/// One directory entry: its DN and its attributes, names lower-cased
/// (LDAP attribute names are case-insensitive, RFC 4512 §2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapEntry {
    pub dn: String,
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// Why a search failed. Never carries the bind password.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("cannot reach the directory at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the directory refused the bind as {bind_dn:?}: {reason}")]
    Bind { bind_dn: String, reason: String },
    #[error("the search under {base_dn:?} with filter {filter} failed: {reason}")]
    Search {
        base_dn: String,
        filter: String,
        reason: String,
    },
    #[error("the directory did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Tls(#[from] crate::io::tls::TlsError),
}

/// Bind and search; every entry of every page.
pub async fn search(q: &LdapQuery) -> Result<Vec<LdapEntry>, LdapError> {
    match tokio::time::timeout(q.timeout, search_inner(q)).await {
        Ok(r) => r,
        Err(_) => Err(LdapError::Timeout(q.timeout)),
    }
}

async fn search_inner(q: &LdapQuery) -> Result<Vec<LdapEntry>, LdapError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(q.timeout)
        .set_starttls(q.starttls);
    if let Some(pem) = &q.ca_pem {
        settings = settings.set_config(crate::io::tls::client_config(Some(pem))?);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &q.url)
        .await
        .map_err(|e| LdapError::Connect {
            url: q.url.clone(),
            reason: e.to_string(),
        })?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP connection ended");
        }
    });
    let result = async {
        let bind = |reason: String| LdapError::Bind {
            bind_dn: q.bind_dn.clone(),
            reason,
        };
        ldap.with_timeout(q.timeout)
            .simple_bind(&q.bind_dn, &q.bind_password)
            .await
            .map_err(|e| bind(e.to_string()))?
            .success()
            .map_err(|e| bind(e.to_string()))?;
        let failed = |reason: String| LdapError::Search {
            base_dn: q.base_dn.clone(),
            filter: q.filter.clone(),
            reason,
        };
        let scope = match q.scope.as_str() {
            "base" => Scope::Base,
            "one" => Scope::OneLevel,
            _ => Scope::Subtree,
        };
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(q.page_size)),
        ];
        let attrs: Vec<&str> = if q.attributes.is_empty() {
            vec!["*"]
        } else {
            q.attributes.iter().map(String::as_str).collect()
        };
        let mut stream = ldap
            .streaming_search_with(adapters, &q.base_dn, scope, &q.filter, attrs)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(entry) = stream.next().await.map_err(|e| failed(e.to_string()))? {
            let e = SearchEntry::construct(entry);
            out.push(LdapEntry {
                dn: e.dn,
                attributes: e
                    .attrs
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            });
        }
        stream
            .finish()
            .await
            .success()
            .map_err(|e| failed(e.to_string()))?;
        Ok::<_, LdapError>(out)
    }
    .await;
    let _ = ldap.unbind().await;
    driver.abort();
    result
}

/// Whether `filter` is an RFC 4515 search filter the client can send.
pub fn valid_filter(filter: &str) -> bool {
    ldap3::parse_filter(filter).is_ok()
}

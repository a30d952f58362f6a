//! The plugin manifest (`plugin.toml`): identity, contract version, grants
//! and limits.

use serde::Deserialize;

use super::grants::{Grant, GrantParseError};
use crate::config::Limits;

use super::wit::ContractVersion;

/// A parsed, validated manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub api_version: String,
    #[serde(default)]
    pub description: String,
    /// Component file name, relative to the manifest; default `<id>.wasm`.
    pub component: Option<String>,
    /// Hex SHA-256 of the component; checked when present, required on upload.
    pub sha256: Option<String>,
    #[serde(default)]
    pub grants: GrantSpec,
    #[serde(default)]
    pub limits: LimitSpec,
}

/// What the plugin may reach.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GrantSpec {
    /// `scheme://host[:port]` patterns (see [`Grant::parse`]).
    #[serde(default)]
    pub network: Vec<String>,
    /// Whether `/hooks/{instance}/...` is routed to the plugin.
    #[serde(default)]
    pub webhooks: bool,
    /// Whether the plugin gets its key-value store.
    #[serde(default)]
    pub kv: bool,
}

/// Resource limits the plugin asks for; the hub caps them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitSpec {
    pub memory_mib: Option<u32>,
    pub call_timeout_ms: Option<u32>,
    pub queue: Option<usize>,
    pub kv_max_bytes: Option<u64>,
}

/// Limits in force for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub memory_bytes: usize,
    pub call_timeout_ms: u32,
    pub queue: usize,
    pub kv_max_bytes: u64,
}

/// A manifest problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid TOML or has an unknown or mistyped field: {0}")]
    Syntax(String),
    #[error("manifest field `{field}`: {message}")]
    Field { field: String, message: String },
}

impl ManifestError {
    /// The field at fault, where one is known.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            Self::Syntax(_) => None,
        }
    }
}

fn field_err(field: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// The dotted key (`limits.memory-mib`) of the `key = value` line holding
/// byte `at`, with the `[table]` it is under.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.contains(char::is_whitespace) {
        return None;
    }
    let table = before[..line_start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .map(|t| t.trim_matches(['[', ']']).trim().to_string())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

impl Manifest {
    /// Parse and validate.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| {
            // A mistyped or unknown key is named like a validation error;
            // only text that is not TOML at all stays a syntax error.
            if text.parse::<toml::Table>().is_err() {
                return ManifestError::Syntax(e.to_string());
            }
            let missing = e
                .message()
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
                .map(str::to_string);
            // A span over one line points at a key or its value; a wider
            // one (a whole table) names nothing.
            let key = e
                .span()
                .filter(|span| text.get(span.clone()).is_some_and(|t| !t.contains('\n')))
                .and_then(|span| key_at(text, span.start));
            match missing.or(key) {
                Some(field) => field_err(&field, e.message()),
                None => ManifestError::Syntax(e.to_string()),
            }
        })?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(field_err(
                "id",
                "use 1-64 characters a-z, 0-9 and -, starting with a letter or digit",
            ));
        }
        semver::Version::parse(&self.version)
            .map_err(|e| field_err("version", format!("not a semantic version: {e}")))?;
        if ContractVersion::parse(&self.api_version).is_none() {
            return Err(field_err(
                "api-version",
                format!(
                    "plugin targets presence:connector@{}; this hub loads {}. Rebuild the plugin against one of them (wit/since_v*/ of this hub)",
                    self.api_version,
                    ContractVersion::supported_list()
                ),
            ));
        }
        if let Some(c) = &self.component
            && (c.is_empty() || c.contains('/') || c.contains('\\') || c.starts_with('.'))
        {
            return Err(field_err(
                "component",
                "a plain file name next to plugin.toml",
            ));
        }
        if let Some(h) = &self.sha256
            && (h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(field_err("sha256", "64 hex digits"));
        }
        for (i, g) in self.grants.network.iter().enumerate() {
            Grant::parse(g).map_err(|GrantParseError { message, .. }| {
                field_err(&format!("grants.network[{i}]"), message)
            })?;
        }
        let l = &self.limits;
        if l.memory_mib == Some(0) {
            return Err(field_err("limits.memory-mib", "must be at least 1"));
        }
        if l.call_timeout_ms == Some(0) {
            return Err(field_err("limits.call-timeout-ms", "must be at least 1"));
        }
        if l.queue == Some(0) {
            return Err(field_err("limits.queue", "must be at least 1"));
        }
        Ok(())
    }

    /// The manifest's network grants (validated at parse time).
    pub fn network_grants(&self) -> Vec<Grant> {
        self.grants
            .network
            .iter()
            .filter_map(|g| Grant::parse(g).ok())
            .collect()
    }

    /// Component file name.
    pub fn component_file(&self) -> String {
        self.component
            .clone()
            .unwrap_or_else(|| format!("{}.wasm", self.id))
    }

    /// The manifest's limits capped by the hub's.
    pub fn effective_limits(&self, hub: &Limits) -> EffectiveLimits {
        let l = &self.limits;
        EffectiveLimits {
            memory_bytes: (l.memory_mib.unwrap_or(64).min(hub.max_memory_mib) as usize) << 20,
            call_timeout_ms: l
                .call_timeout_ms
                .unwrap_or(hub.call_timeout_ms)
                .min(hub.max_call_timeout_ms),
            queue: l.queue.unwrap_or(hub.queue).min(hub.queue.max(1) * 16),
            kv_max_bytes: l.kv_max_bytes.unwrap_or(1 << 20).min(64 << 20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "sip-simple"
version = "1.2.3"
api-version = "0.1.0"
[grants]
network = ["udp://*:5060"]
webhooks = false
[limits]
memory-mib = 32
"#;

    #[test]
    fn good_manifest() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.component_file(), "sip-simple.wasm");
        let l = m.effective_limits(&Limits::default());
        assert_eq!(l.memory_bytes, 32 << 20);
        assert_eq!(l.call_timeout_ms, 1000);
    }

    #[test]
    fn limits_are_capped_by_the_hub() {
        let m = Manifest::parse(&GOOD.replace("memory-mib = 32", "memory-mib = 99999")).unwrap();
        assert_eq!(
            m.effective_limits(&Limits::default()).memory_bytes,
            256 << 20
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("sip-simple", "Sip Simple"), "id"),
            (GOOD.replace("1.2.3", "one"), "version"),
            (
                GOOD.replace("api-version = \"0.1.0\"", "api-version = \"0.9.0\""),
                "api-version",
            ),
            (
                GOOD.replace("api-version = \"0.1.0\"", "api-version = \"1.0.0\""),
                "api-version",
            ),
            (GOOD.replace("udp://*:5060", "udp://*"), "grants.network[0]"),
            (
                GOOD.replace("memory-mib = 32", "memory-mib = 0"),
                "limits.memory-mib",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(
                Manifest::parse(&text).unwrap_err().field(),
                Some(field),
                "{text}"
            );
        }
        // Mistyped and unknown keys are named, under their table.
        assert_eq!(
            Manifest::parse("id = \"x\"\nversion = 1")
                .unwrap_err()
                .field(),
            Some("version")
        );
        let unknown = GOOD.replace("memory-mib = 32", "memory-mib = 32\nmemroy = 1");
        assert_eq!(
            Manifest::parse(&unknown).unwrap_err().field(),
            Some("limits.memroy")
        );
        assert!(matches!(
            Manifest::parse("id = \"x\"\nversion = "),
            Err(ManifestError::Syntax(_))
        ));
        assert_eq!(
            Manifest::parse(&format!("{GOOD}\nbogus = 1"))
                .unwrap_err()
                .field(),
            Some("limits.bogus")
        );
    }

    #[test]
    fn api_versions_are_the_released_ones() {
        for v in ["0.1.0", "0.2.0"] {
            assert_eq!(ContractVersion::parse(v).map(|c| c.as_str()), Some(v));
        }
        for v in ["0.1.7", "0.3.0", "1.0.0", "0.2"] {
            assert!(ContractVersion::parse(v).is_none(), "{v}");
        }
    }
}

/// Fuzz target `manifests` (`tools/fuzzkit`): `plugin.toml` text, from the
/// seeds in `fuzz/corpus/manifests/` (the shipped plugins' manifests and
/// edge cases), mutated; no panic allowed.
/// `FUZZ_SECONDS=<n> cargo test -p presence-hub fuzz_manifests` runs longer.
#[cfg(test)]
mod fuzz {
    use super::*;

    const DICTIONARY: &[&[u8]] = &[
        b"\n",
        b"=",
        b"\"",
        b"'",
        b"\"\"\"",
        b"'''",
        b"[",
        b"]",
        b"[[",
        b"]]",
        b"{",
        b"}",
        b",",
        b".",
        b"#",
        b"\\u",
        b"\\U0010FFFF",
        b"\\",
        b"0",
        b"-1",
        b"18446744073709551616",
        b"1979-05-27T07:32:00Z",
        b"inf",
        b"nan",
        b"true",
        b"id = ",
        b"version = \"1.0.0\"",
        b"api-version = \"0.2.0\"",
        b"api-version = \"0.1.0\"",
        b"component = ",
        b"sha256 = ",
        b"[grants]\n",
        b"network = [\"https://*.example.com\", \"udp://*:5060\"]",
        b"webhooks = true",
        b"kv = true",
        b"[limits]\n",
        b"memory-mib = ",
        b"call-timeout-ms = ",
        b"queue = ",
        b"kv-max-bytes = ",
    ];

    fn exercise(input: &[u8]) {
        let text = String::from_utf8_lossy(input);
        match Manifest::parse(&text) {
            Ok(m) => {
                let _ = (
                    m.network_grants(),
                    m.component_file(),
                    m.effective_limits(&Limits::default()),
                );
            }
            Err(e) => {
                let _ = (e.field(), e.to_string());
            }
        }
    }

    #[test]
    fn fuzz_manifests() {
        let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "manifests");
        fuzzkit::check(
            "manifests",
            &corpus,
            DICTIONARY,
            fuzzkit::Budget::from_env(),
            exercise,
        );
    }
}

//! Online backup and offline restore of a hub's data.
//!
//! A backup is a tar archive of three members:
//! - `backup.json`: format, hub version, time, whether the key is inside,
//!   and the database's SHA-256;
//! - `hub.db`: a consistent copy of the database taken while the hub keeps
//!   writing (SQLite `VACUUM INTO`, one read transaction: every write is in
//!   it whole or not at all);
//! - `secret.key`: the key that opens connector secrets and plugins' sealed
//!   key-value data, unless the operator leaves it out (then the archive
//!   restores only beside the `secret.key` kept apart).
//!
//! A restore goes into a new, empty data directory, checks the archive, and
//! opens the restored store (its migrations run, every connector's secrets
//! are opened) before the directory takes its final name: a bad archive or
//! a wrong key leaves nothing behind.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{SqliteStore, Store, StoreError};

/// What `backup.json` says.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BackupManifest {
    /// 1: this layout.
    pub format: u32,
    /// The hub version that wrote it.
    pub hub_version: String,
    /// When (Unix ms).
    pub created_at_ms: u64,
    /// Whether `secret.key` is in the archive.
    pub contains_secret_key: bool,
    /// SHA-256 of `hub.db`, hex.
    pub database_sha256: String,
}

const FORMAT: u32 = 1;
const MANIFEST: &str = "backup.json";
const DATABASE: &str = "hub.db";
const KEY: &str = "secret.key";

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("not a hub backup: {0}")]
    NotABackup(String),
    #[error(
        "the backup has no secret key (made with it left out): pass the hub's secret.key with --secret-key"
    )]
    KeyNeeded,
    #[error(
        "the data directory {0} is not empty: restore into a new directory (or move this one aside)"
    )]
    NotEmpty(PathBuf),
    #[error("the secret key does not open this backup's secrets: {0}")]
    WrongKey(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// The archive of `store` (whose files live in `data_dir`), in memory.
/// `now_ms` stamps the manifest.
pub fn archive(
    store: &dyn Store,
    data_dir: &Path,
    include_key: bool,
    now_ms: u64,
) -> Result<Vec<u8>, BackupError> {
    // The copy is made beside the database (same filesystem, same private
    // directory), read back, and removed however this ends.
    let tmp = tempfile::Builder::new()
        .prefix(".backup-")
        .tempdir_in(data_dir)
        .map_err(io(format!("temporary folder in {}", data_dir.display())))?;
    let copy = tmp.path().join(DATABASE);
    store.snapshot(&copy)?;
    let db = std::fs::read(&copy).map_err(io("the database copy"))?;
    let key = if include_key {
        Some(std::fs::read(data_dir.join(KEY)).map_err(io("secret.key"))?)
    } else {
        None
    };
    let manifest = BackupManifest {
        format: FORMAT,
        hub_version: env!("CARGO_PKG_VERSION").into(),
        created_at_ms: now_ms,
        contains_secret_key: key.is_some(),
        database_sha256: hex::encode(Sha256::digest(&db)),
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), BackupError> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(now_ms / 1000);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes).map_err(io(name))
    };
    add(
        MANIFEST,
        &serde_json::to_vec_pretty(&manifest).expect("a manifest serialises"),
    )?;
    add(DATABASE, &db)?;
    if let Some(k) = &key {
        add(KEY, k)?;
    }
    tar.into_inner().map_err(io("the archive"))
}

/// What a restore found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub manifest: BackupManifest,
    pub connectors: usize,
    pub users: usize,
}

/// Restore `archive` into `data_dir`, which must not exist or be empty;
/// `key_file` supplies the secret key when the archive holds none.
pub fn restore(
    archive: &Path,
    data_dir: &Path,
    key_file: Option<&Path>,
) -> Result<Restored, BackupError> {
    if let Ok(mut entries) = std::fs::read_dir(data_dir)
        && entries.next().is_some()
    {
        return Err(BackupError::NotEmpty(data_dir.to_owned()));
    }
    let file = std::fs::File::open(archive).map_err(io(archive.display().to_string()))?;
    let mut manifest = None;
    let mut db = None;
    let mut key = None;
    let mut tar = tar::Archive::new(file);
    for entry in tar
        .entries()
        .map_err(|e| BackupError::NotABackup(e.to_string()))?
    {
        let mut entry = entry.map_err(|e| BackupError::NotABackup(e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| BackupError::NotABackup(e.to_string()))?
            .to_string_lossy()
            .to_string();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| BackupError::NotABackup(format!("{name}: {e}")))?;
        match name.as_str() {
            MANIFEST => {
                manifest = Some(
                    serde_json::from_slice::<BackupManifest>(&bytes)
                        .map_err(|e| BackupError::NotABackup(format!("{MANIFEST}: {e}")))?,
                )
            }
            DATABASE => db = Some(bytes),
            KEY => key = Some(bytes),
            other => {
                return Err(BackupError::NotABackup(format!(
                    "unexpected member {other:?}"
                )));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| BackupError::NotABackup(format!("no {MANIFEST}")))?;
    if manifest.format != FORMAT {
        return Err(BackupError::NotABackup(format!(
            "format {} (this hub reads format {FORMAT})",
            manifest.format
        )));
    }
    let db = db.ok_or_else(|| BackupError::NotABackup(format!("no {DATABASE}")))?;
    if hex::encode(Sha256::digest(&db)) != manifest.database_sha256 {
        return Err(BackupError::NotABackup(
            "hub.db does not match its checksum (truncated or altered)".into(),
        ));
    }
    let key = match (key, key_file) {
        (Some(k), _) => k,
        (None, Some(p)) => std::fs::read(p).map_err(io(p.display().to_string()))?,
        (None, None) => return Err(BackupError::KeyNeeded),
    };

    // Staged beside the target, renamed into place once it opens.
    let parent = match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(parent.display().to_string()))?;
    let stage = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(&parent)
        .map_err(io(format!("a staging folder in {}", parent.display())))?;
    write_private(&stage.path().join(KEY), &key)?;
    write_private(&stage.path().join(DATABASE), &db)?;
    let (connectors, users) = {
        let store = SqliteStore::open(stage.path())?;
        let connectors = store.connectors().map_err(|e| match e {
            StoreError::Corrupt { message, .. } => BackupError::WrongKey(message),
            other => BackupError::WrongKey(other.to_string()),
        })?;
        (connectors.len(), store.users()?.len())
    };
    let stage = stage.keep();
    // An empty target directory is replaced; a missing one is made.
    let _ = std::fs::remove_dir(data_dir);
    std::fs::rename(&stage, data_dir).map_err(io(format!(
        "moving the restored data to {}",
        data_dir.display()
    )))?;
    set_private_dir(data_dir)?;
    Ok(Restored {
        manifest,
        connectors,
        users,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(io(path.display().to_string()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(path.display().to_string()))
}

fn set_private_dir(dir: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(dir.display().to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConnectorRecord;

    fn connector(id: &str) -> ConnectorRecord {
        ConnectorRecord {
            id: id.into(),
            plugin: "http-push".into(),
            config: Default::default(),
            secrets: Default::default(),
            enabled: true,
            tls_ca_pem: None,
            watches: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn round_trip_with_and_without_the_key() {
        let src = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(src.path()).unwrap();
        let mut c = connector("pbx");
        c.secrets.insert("password".into(), "s3cret".into());
        store.put_connector(&c).unwrap();
        store
            .put_users(&[("alice".into(), r#"{"username":"alice"}"#.into())])
            .unwrap();

        let bytes = archive(&store, src.path(), true, 1_000).unwrap();
        let file = src.path().join("b.tar");
        std::fs::write(&file, &bytes).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("data");
        let r = restore(&file, &dest, None).unwrap();
        assert_eq!((r.connectors, r.users), (1, 1));
        let back = SqliteStore::open(&dest).unwrap();
        assert_eq!(back.connectors().unwrap()[0].secrets["password"], "s3cret");
        // Not into a directory that holds anything.
        assert!(matches!(
            restore(&file, &dest, None),
            Err(BackupError::NotEmpty(_))
        ));

        // Without the key: refused unless the key is given, and the right one.
        let bytes = archive(&store, src.path(), false, 1_000).unwrap();
        std::fs::write(&file, &bytes).unwrap();
        let dest2 = out.path().join("data2");
        assert!(matches!(
            restore(&file, &dest2, None),
            Err(BackupError::KeyNeeded)
        ));
        let wrong = out.path().join("wrong.key");
        std::fs::write(&wrong, [7u8; 32]).unwrap();
        assert!(matches!(
            restore(&file, &dest2, Some(&wrong)),
            Err(BackupError::WrongKey(_))
        ));
        assert!(!dest2.exists(), "a failed restore leaves nothing behind");
        restore(&file, &dest2, Some(&src.path().join("secret.key"))).unwrap();

        // A damaged archive is refused.
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        std::fs::write(&file, &bad).unwrap();
        assert!(restore(&file, &out.path().join("data3"), None).is_err());
    }
}

//! An instance's key-value data in memory, written behind to the store.
//!
//! A run loads its data once, at its start; the guest's `kv` calls then read
//! and change memory only (the quota is kept here), and a writer thread
//! commits the changes to the store in order and in batches, outside the
//! guest's CPU deadline. Ending a run waits for its writes, so the next run,
//! a deleted connector or a shutdown sees every one of them.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, Weak};

use crate::store::{KvWrite, Store, StoreError};

/// Key-value writes the store refused since the hub started (all instances).
static WRITES_LOST: AtomicU64 = AtomicU64::new(0);

/// Key-value writes the store refused since the hub started, all instances
/// together (each is logged, without its value). Such a write stays visible
/// to the run that made it but is gone after a restart.
pub fn kv_writes_lost() -> u64 {
    WRITES_LOST.load(Ordering::Relaxed)
}

/// One run's view of its instance's key-value data.
pub struct KvCache {
    entries: BTreeMap<String, Vec<u8>>,
    /// Key plus value bytes of all entries: what the quota counts.
    bytes: u64,
    max_bytes: u64,
    writer: Arc<Writer>,
}

impl KvCache {
    /// Read `instance`'s data from `store`, once writes still queued for it
    /// (by an earlier run) are committed. `max_bytes` is the quota that
    /// [`KvCache::set`] keeps.
    ///
    /// Errors: the store's, when it cannot be read.
    pub fn load(
        store: &Arc<dyn Store>,
        instance: &str,
        max_bytes: u64,
    ) -> Result<Self, StoreError> {
        let writer = Writer::of(store, instance);
        writer.flush();
        let entries: BTreeMap<String, Vec<u8>> = store.kv_all(instance)?.into_iter().collect();
        let bytes = entries.iter().map(|(k, v)| size(k, v)).sum();
        if bytes > max_bytes {
            // A quota lowered since: the data stays readable, writes that
            // grow it are refused.
            tracing::warn!(
                bytes,
                max_bytes,
                "stored key-value data exceeds the plugin's limit"
            );
        }
        Ok(Self {
            entries,
            bytes,
            max_bytes,
            writer,
        })
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Keys starting with `prefix`, in byte order.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Set `key` at once; the store follows in the background.
    ///
    /// Errors: [`StoreError::LimitExceeded`] when the instance's data (keys
    /// plus values, in bytes) would grow beyond the quota; nothing changes
    /// then.
    pub fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        let old = self.entries.get(&key).map_or(0, |v| size(&key, v));
        let total = self.bytes - old + size(&key, &value);
        if total > self.max_bytes {
            return Err(StoreError::LimitExceeded(format!(
                "key-value data would grow to {total} bytes; the plugin's limit is {} (manifest limits.kv-max-bytes)",
                self.max_bytes
            )));
        }
        self.bytes = total;
        self.entries.insert(key.clone(), value.clone());
        self.writer.push(key, Some(value));
        Ok(())
    }

    /// Delete `key` at once (nothing when it is absent); the store follows
    /// in the background.
    pub fn delete(&mut self, key: &str) {
        if let Some(v) = self.entries.remove(key) {
            self.bytes -= size(key, &v);
            self.writer.push(key.to_owned(), None);
        }
    }

    /// Wait until every change made so far is committed (or refused); a
    /// run's end does this.
    #[cfg(test)]
    pub fn flush(&self) {
        self.writer.flush();
    }
}

impl Drop for KvCache {
    fn drop(&mut self) {
        self.writer.flush();
    }
}

fn size(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// Commits one instance's changes to one store, in order; shared by every
/// run of the instance alive at once, so a new run can wait for the writes
/// of the one before it.
struct Writer {
    instance: String,
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
    /// Signalled when `busy` turns false.
    idle: Condvar,
}

#[derive(Default)]
struct Queue {
    /// The latest change per key not yet handed to the store (`None`:
    /// delete). A key changed twice before a commit is written once, with
    /// its last value; each batch is committed atomically after the one
    /// before it, so the store always holds some state the run had.
    pending: BTreeMap<String, Option<Vec<u8>>>,
    /// A thread is committing, or about to.
    busy: bool,
}

/// The live writers, by store (its address) and instance.
type Writers = HashMap<(usize, String), Weak<Writer>>;
static WRITERS: LazyLock<Mutex<Writers>> = LazyLock::new(Mutex::default);

/// Locks even when poisoned: the data under these locks is never left
/// half-changed by a panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    fn of(store: &Arc<dyn Store>, instance: &str) -> Arc<Self> {
        // A writer holds its store, so an address in use by a live writer
        // cannot have been reused by another store.
        let key = (
            Arc::as_ptr(store) as *const () as usize,
            instance.to_owned(),
        );
        let mut all = lock(&WRITERS);
        if let Some(w) = all.get(&key).and_then(Weak::upgrade) {
            return w;
        }
        all.retain(|_, w| w.strong_count() > 0);
        let w = Arc::new(Writer {
            instance: instance.to_owned(),
            store: store.clone(),
            queue: Mutex::default(),
            idle: Condvar::new(),
        });
        all.insert(key, Arc::downgrade(&w));
        w
    }

    /// Queue a change; starts a committing thread when none runs. Never
    /// waits for the store.
    fn push(self: &Arc<Self>, key: String, value: Option<Vec<u8>>) {
        let start = {
            let mut q = lock(&self.queue);
            q.pending.insert(key, value);
            !std::mem::replace(&mut q.busy, true)
        };
        if !start {
            return;
        }
        let w = self.clone();
        let spawned = std::thread::Builder::new()
            .name("kv writer".into())
            .spawn(move || w.drain());
        if let Err(e) = spawned {
            // The change stays queued for the next one, or the flush.
            tracing::warn!(error = %e, "cannot start a key-value writer thread");
            lock(&self.queue).busy = false;
            self.idle.notify_all();
        }
    }

    /// Commit batches until the queue is empty; the caller has set `busy`.
    fn drain(&self) {
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                if q.pending.is_empty() {
                    q.busy = false;
                    self.idle.notify_all();
                    return;
                }
                std::mem::take(&mut q.pending)
            };
            let writes: Vec<KvWrite> = batch
                .into_iter()
                .map(|(key, value)| match value {
                    Some(value) => KvWrite::Set { key, value },
                    None => KvWrite::Delete { key },
                })
                .collect();
            // A panicking store must not leave `busy` set: the run's end
            // would wait for it forever.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.store.kv_write(&self.instance, &writes)
            }));
            let error = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the store panicked".to_owned(),
            };
            let lost = writes.len() as u64;
            let total = WRITES_LOST.fetch_add(lost, Ordering::Relaxed) + lost;
            // Keys and values stay out of the log: values may be secrets.
            tracing::error!(
                instance = %self.instance,
                writes = lost,
                lost_total = total,
                %error,
                "key-value writes not stored; the run keeps them in memory, a restart will not see them"
            );
        }
    }

    /// Wait for the committing thread, then commit what is left here.
    fn flush(&self) {
        let mut q = lock(&self.queue);
        while q.busy {
            q = self.idle.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        if q.pending.is_empty() {
            return;
        }
        q.busy = true;
        drop(q);
        self.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        ConnectorRecord, EventQuery, EventRecord, PluginRecord, SqliteStore, TokenRecord,
    };
    use std::time::Duration;

    /// SQLite whose key-value writes wait until the test opens the gate.
    struct GatedStore {
        inner: SqliteStore,
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl GatedStore {
        fn new(dir: &std::path::Path) -> Arc<Self> {
            Arc::new(Self {
                inner: SqliteStore::open(dir).unwrap(),
                open: Mutex::new(false),
                opened: Condvar::new(),
            })
        }

        fn set_open(&self, open: bool) {
            *self.open.lock().unwrap() = open;
            self.opened.notify_all();
        }
    }

    impl Store for GatedStore {
        fn kv_write(&self, instance: &str, writes: &[KvWrite]) -> Result<(), StoreError> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            drop(open);
            self.inner.kv_write(instance, writes)
        }
        fn kv_all(&self, instance: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.inner.kv_all(instance)
        }
        fn kv_get(&self, i: &str, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.kv_get(i, k)
        }
        fn kv_set(&self, i: &str, k: &str, v: &[u8], m: u64) -> Result<(), StoreError> {
            self.inner.kv_set(i, k, v, m)
        }
        fn kv_delete(&self, i: &str, k: &str) -> Result<(), StoreError> {
            self.inner.kv_delete(i, k)
        }
        fn kv_keys(&self, i: &str, p: &str) -> Result<Vec<String>, StoreError> {
            self.inner.kv_keys(i, p)
        }
        fn snapshot(&self, dest: &std::path::Path) -> Result<(), StoreError> {
            self.inner.snapshot(dest)
        }
        fn put_plugin(&self, p: &PluginRecord) -> Result<(), StoreError> {
            self.inner.put_plugin(p)
        }
        fn delete_plugin(&self, id: &str) -> Result<bool, StoreError> {
            self.inner.delete_plugin(id)
        }
        fn plugins(&self) -> Result<Vec<PluginRecord>, StoreError> {
            self.inner.plugins()
        }
        fn put_connector(&self, c: &ConnectorRecord) -> Result<(), StoreError> {
            self.inner.put_connector(c)
        }
        fn delete_connector(&self, id: &str) -> Result<bool, StoreError> {
            self.inner.delete_connector(id)
        }
        fn connectors(&self) -> Result<Vec<ConnectorRecord>, StoreError> {
            self.inner.connectors()
        }
        fn put_users(&self, u: &[(String, String)]) -> Result<(), StoreError> {
            self.inner.put_users(u)
        }
        fn delete_user(&self, u: &str) -> Result<bool, StoreError> {
            self.inner.delete_user(u)
        }
        fn users(&self) -> Result<Vec<(String, String)>, StoreError> {
            self.inner.users()
        }
        fn add_note(&self, u: &str, r: &str) -> Result<i64, StoreError> {
            self.inner.add_note(u, r)
        }
        fn delete_note(&self, id: i64) -> Result<bool, StoreError> {
            self.inner.delete_note(id)
        }
        fn notes(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
            self.inner.notes()
        }
        fn put_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
            self.inner.put_token(t)
        }
        fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
            self.inner.delete_token(id)
        }
        fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
            self.inner.tokens()
        }
        fn append_events(&self, e: &[EventRecord]) -> Result<(), StoreError> {
            self.inner.append_events(e)
        }
        fn events(&self, q: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
            self.inner.events(q)
        }
        fn prune_events(&self, t: u64) -> Result<usize, StoreError> {
            self.inner.prune_events(t)
        }
        fn setting(&self, k: &str) -> Result<Option<String>, StoreError> {
            self.inner.setting(k)
        }
        fn set_setting(&self, k: &str, v: &str) -> Result<(), StoreError> {
            self.inner.set_setting(k, v)
        }
    }

    fn stores() -> (tempfile::TempDir, Arc<GatedStore>, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let gated = GatedStore::new(dir.path());
        let store: Arc<dyn Store> = gated.clone();
        (dir, gated, store)
    }

    #[test]
    fn changes_are_visible_at_once_while_the_store_is_stuck() {
        let (_dir, gated, store) = stores();
        let mut kv = KvCache::load(&store, "a", 1000).unwrap();
        kv.set("tok/1".into(), b"x".to_vec()).unwrap();
        kv.set("tok/2".into(), b"y".to_vec()).unwrap();
        kv.set("other".into(), b"z".to_vec()).unwrap();
        kv.delete("tok/2");
        assert_eq!(kv.get("tok/1"), Some(&b"x"[..]));
        assert_eq!(kv.get("tok/2"), None);
        assert_eq!(kv.keys("tok/"), vec!["tok/1"]);
        assert_eq!(kv.keys(""), vec!["other", "tok/1"]);
        // Nothing reached SQLite: the calls above did not wait for it.
        assert_eq!(store.kv_all("a").unwrap(), vec![]);
        gated.set_open(true);
    }

    #[test]
    fn flush_persists_every_change() {
        let (_dir, gated, store) = stores();
        gated.set_open(true);
        let mut kv = KvCache::load(&store, "a", 1000).unwrap();
        for i in 0..50u8 {
            kv.set(format!("k{i:02}"), vec![i]).unwrap();
        }
        kv.delete("k07");
        kv.set("k00".into(), b"last".to_vec()).unwrap();
        kv.flush();
        let stored = store.kv_all("a").unwrap();
        assert_eq!(stored.len(), 49);
        assert_eq!(stored[0], ("k00".into(), b"last".to_vec()));
        assert!(!stored.iter().any(|(k, _)| k == "k07"));
        assert_eq!(store.kv_all("b").unwrap(), vec![]);
    }

    #[test]
    fn quota_is_kept_in_memory() {
        let (_dir, gated, store) = stores();
        gated.set_open(true);
        let mut kv = KvCache::load(&store, "a", 100).unwrap();
        kv.set("a".into(), vec![0; 49]).unwrap();
        let err = kv.set("b".into(), vec![0; 50]).unwrap_err();
        assert!(
            matches!(&err, StoreError::LimitExceeded(m) if m.contains("would grow to 101 bytes; the plugin's limit is 100")),
            "{err}"
        );
        assert_eq!(kv.get("b"), None);
        // Replacing a value counts the new one only; deleting frees room.
        kv.set("a".into(), vec![1; 99]).unwrap();
        kv.delete("a");
        kv.set("b".into(), vec![0; 99]).unwrap();
        kv.flush();
        assert_eq!(store.kv_all("a").unwrap(), vec![("b".into(), vec![0; 99])]);
        // A later run counts what it loaded.
        drop(kv);
        let mut kv = KvCache::load(&store, "a", 100).unwrap();
        assert!(matches!(
            kv.set("c".into(), vec![]),
            Err(StoreError::LimitExceeded(_))
        ));
    }

    #[test]
    fn next_run_reads_back_writes_still_queued_by_the_last() {
        let (_dir, gated, store) = stores();
        let mut first = KvCache::load(&store, "a", 1000).unwrap();
        first.set("token".into(), b"fresh".to_vec()).unwrap();
        // The old run's write is still queued when the new run loads (its
        // store may not even be dropped yet): the load waits for it.
        let opener = {
            let gated = gated.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                gated.set_open(true);
            })
        };
        let second = KvCache::load(&store, "a", 1000).unwrap();
        assert_eq!(second.get("token"), Some(&b"fresh"[..]));
        opener.join().unwrap();
        drop(first);

        // And a run that ends right after a write leaves it stored.
        gated.set_open(false);
        let mut third = KvCache::load(&store, "a", 1000).unwrap();
        third.set("token".into(), b"newer".to_vec()).unwrap();
        let opener = {
            let gated = gated.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                gated.set_open(true);
            })
        };
        drop(third);
        drop(second);
        assert_eq!(store.kv_get("a", "token").unwrap(), Some(b"newer".to_vec()));
        opener.join().unwrap();
    }
}

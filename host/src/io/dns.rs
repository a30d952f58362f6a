//! Host names plugins give for UDP, resolved without ever blocking a guest
//! call.
//!
//! IP literals need no lookup. A name is looked up with tokio's resolver on
//! the I/O runtime and its answer kept [`TTL`] in a bounded, process-wide
//! cache; a call only ever reads the cache. An expired answer keeps serving
//! (while a fresh lookup runs) for up to [`STALE_FOR`], so that a refresh or
//! a restart does not make a call fail; a failed lookup is remembered for
//! [`NEGATIVE_TTL`].

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an answer is taken as fresh.
pub const TTL: Duration = Duration::from_secs(60);
/// How long past its TTL an answer still serves while it is refreshed.
pub const STALE_FOR: Duration = Duration::from_secs(600);
/// How long a failed lookup is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most names remembered; the oldest answer goes first.
const MAX_NAMES: usize = 1024;
/// Longest a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Failed lookups since the hub started.
static FAILURES: AtomicU64 = AtomicU64::new(0);

/// Lookups of plugin-given host names that failed since the hub started
/// (each is logged).
pub fn dns_failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

/// What the cache knows of a name now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Known {
    Addr(IpAddr),
    /// The last lookup failed: why.
    Failed(String),
    /// No answer yet; a lookup is under way.
    Pending,
}

type LookupFuture = Pin<Box<dyn Future<Output = Result<IpAddr, String>> + Send>>;
/// Looks a name up (the system's resolver; a stub in tests).
pub(super) type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

struct Entry {
    answer: Option<Result<IpAddr, String>>,
    at: Instant,
    looking_up: bool,
}

/// A cache of answers in front of a lookup function.
pub(super) struct Resolver {
    names: Mutex<HashMap<String, Entry>>,
    lookup: Lookup,
}

/// The hub's resolver: tokio's `lookup_host` (the system resolver, on
/// tokio's blocking pool).
pub(super) static SYSTEM: LazyLock<Arc<Resolver>> = LazyLock::new(|| {
    Resolver::new(Arc::new(|host: String| {
        Box::pin(async move {
            let mut addrs = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| e.to_string())?;
            addrs
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| "no address".to_owned())
        })
    }))
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Resolver {
    pub(super) fn new(lookup: Lookup) -> Arc<Self> {
        Arc::new(Self {
            names: Mutex::default(),
            lookup,
        })
    }

    /// The answer for `host` as known now, never waiting. A missing or
    /// expired answer starts a lookup on the current tokio runtime (none
    /// starts outside one).
    pub(super) fn peek(self: &Arc<Self>, host: &str) -> Known {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Known::Addr(ip);
        }
        let host = host.to_ascii_lowercase();
        let now = Instant::now();
        let mut names = lock(&self.names);
        let entry = names.get_mut(&host);
        let (known, refresh) = match entry {
            None => (Known::Pending, true),
            Some(e) => {
                let age = now.duration_since(e.at);
                match &e.answer {
                    None => (Known::Pending, !e.looking_up),
                    Some(Ok(ip)) if age < TTL => (Known::Addr(*ip), false),
                    Some(Ok(ip)) if age < TTL + STALE_FOR => (Known::Addr(*ip), !e.looking_up),
                    Some(Ok(_)) => (Known::Pending, !e.looking_up),
                    Some(Err(m)) if age < NEGATIVE_TTL => (Known::Failed(m.clone()), false),
                    Some(Err(_)) => (Known::Pending, !e.looking_up),
                }
            }
        };
        if refresh && let Ok(rt) = tokio::runtime::Handle::try_current() {
            Self::mark_looking_up(&mut names, &host, now);
            drop(names);
            let this = self.clone();
            rt.spawn(async move {
                let _ = this.look_up(host).await;
            });
        }
        known
    }

    /// Resolve `host` now: the cached answer when fresh, else a lookup.
    ///
    /// Errors: why the lookup failed (also cached for [`NEGATIVE_TTL`]).
    pub(super) async fn resolve(self: &Arc<Self>, host: &str) -> Result<IpAddr, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        let host = host.to_ascii_lowercase();
        {
            let names = lock(&self.names);
            if let Some(Entry {
                answer: Some(a),
                at,
                ..
            }) = names.get(&host)
            {
                let ttl = if a.is_ok() { TTL } else { NEGATIVE_TTL };
                if at.elapsed() < ttl {
                    return a.clone();
                }
            }
        }
        self.look_up(host).await
    }

    async fn look_up(&self, host: String) -> Result<IpAddr, String> {
        let answer = match tokio::time::timeout(LOOKUP_TIMEOUT, (self.lookup)(host.clone())).await {
            Ok(a) => a,
            Err(_) => Err(format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs())),
        };
        if let Err(e) = &answer {
            let n = FAILURES.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(%host, error = %e, failures = n, "cannot resolve a plugin's host name");
        }
        let mut names = lock(&self.names);
        let keep_stale = matches!(
            (names.get(&host), &answer),
            (Some(Entry { answer: Some(Ok(_)), at, .. }), Err(_)) if at.elapsed() < TTL + STALE_FOR
        );
        if keep_stale {
            // A failed refresh leaves the last good answer serving until it
            // is too old.
            if let Some(e) = names.get_mut(&host) {
                e.looking_up = false;
            }
        } else {
            Self::make_room(&mut names, &host);
            names.insert(
                host,
                Entry {
                    answer: Some(answer.clone()),
                    at: Instant::now(),
                    looking_up: false,
                },
            );
        }
        answer
    }

    fn mark_looking_up(names: &mut HashMap<String, Entry>, host: &str, now: Instant) {
        if let Some(e) = names.get_mut(host) {
            e.looking_up = true;
            return;
        }
        Self::make_room(names, host);
        names.insert(
            host.to_owned(),
            Entry {
                answer: None,
                at: now,
                looking_up: true,
            },
        );
    }

    /// Evict the oldest answer when `host` would be one name too many.
    fn make_room(names: &mut HashMap<String, Entry>, host: &str) {
        if names.len() < MAX_NAMES || names.contains_key(host) {
            return;
        }
        let oldest = names
            .iter()
            .filter(|(_, e)| !e.looking_up)
            .min_by_key(|(_, e)| e.at)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            names.remove(&k);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::watch;

    /// Publishes the answer every lookup of a [`gated`] resolver gives.
    pub(crate) type Gate = watch::Sender<Option<Result<IpAddr, String>>>;

    /// A resolver whose lookups wait until the test publishes an answer;
    /// counts the lookups it was asked for.
    pub(crate) fn gated() -> (Arc<Resolver>, Gate, Arc<AtomicUsize>) {
        let (tx, rx) = watch::channel(None);
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        let resolver = Resolver::new(Arc::new(move |_host| {
            count.fetch_add(1, Ordering::SeqCst);
            let mut rx = rx.clone();
            Box::pin(async move {
                let answer = rx.wait_for(Option::is_some).await.expect("gate kept");
                answer.clone().expect("published")
            })
        }));
        (resolver, tx, asked)
    }

    #[tokio::test]
    async fn literals_need_no_lookup_and_names_are_looked_up_once() {
        let (r, gate, asked) = gated();
        assert_eq!(r.peek("10.0.0.1"), Known::Addr("10.0.0.1".parse().unwrap()));
        assert_eq!(r.peek("::1"), Known::Addr("::1".parse().unwrap()));
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        // Not known yet: the call returns at once, one lookup starts.
        assert_eq!(r.peek("PBX.example"), Known::Pending);
        assert_eq!(r.peek("pbx.example"), Known::Pending);
        let answer = r.resolve("pbx.example");
        tokio::task::yield_now().await;
        gate.send_replace(Some(Ok("192.0.2.7".parse().unwrap())));
        assert_eq!(answer.await, Ok("192.0.2.7".parse().unwrap()));
        assert_eq!(
            r.peek("pbx.example"),
            Known::Addr("192.0.2.7".parse().unwrap())
        );
        // The background lookup and the awaited one; no more for fresh answers.
        tokio::task::yield_now().await;
        assert!(asked.load(Ordering::SeqCst) <= 2);
        let before = asked.load(Ordering::SeqCst);
        r.peek("pbx.example");
        assert_eq!(asked.load(Ordering::SeqCst), before);
    }

    #[tokio::test]
    async fn failures_are_remembered_briefly_and_a_stale_answer_survives_a_failed_refresh() {
        let (r, gate, _) = gated();
        gate.send_replace(Some(Err("no such name".into())));
        assert_eq!(r.resolve("nx.example").await, Err("no such name".into()));
        assert_eq!(r.peek("nx.example"), Known::Failed("no such name".into()));

        gate.send_replace(Some(Ok("192.0.2.8".parse().unwrap())));
        r.resolve("old.example").await.unwrap();
        // Age the answer past its TTL: it still serves, and a failed
        // refresh keeps it.
        lock(&r.names).get_mut("old.example").unwrap().at -= TTL + Duration::from_secs(1);
        gate.send_replace(Some(Err("timed out".into())));
        assert_eq!(
            r.peek("old.example"),
            Known::Addr("192.0.2.8".parse().unwrap())
        );
        r.look_up("old.example".into()).await.unwrap_err();
        assert_eq!(
            r.peek("old.example"),
            Known::Addr("192.0.2.8".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let (r, gate, _) = gated();
        gate.send_replace(Some(Ok("192.0.2.9".parse().unwrap())));
        for i in 0..MAX_NAMES + 10 {
            r.resolve(&format!("n{i}.example")).await.unwrap();
        }
        assert_eq!(lock(&r.names).len(), MAX_NAMES);
    }
}

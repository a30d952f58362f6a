//! A SIP presence server played by the benchmark on UDP loopback: it
//! accepts the hub's SUBSCRIBEs (presence and dialog) with 200, sends the
//! initial NOTIFY of each dialog (retransmitted until answered, as a UDP
//! notifier does), answers OPTIONS keep-alives and unsubscribes, and then
//! sends updates as NOTIFYs within the dialogs, as fast as it is told to.
//!
//! It counts what the hub answered: each 200 to an update NOTIFY means the
//! sip-simple plugin parsed it and reported it (the plugin answers and
//! reports in the same call). What each user's presence should be in the
//! end is kept too, to check that nothing was lost.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sip::{self, DialogIds, Msg, Package};

/// The domain of the benchmark's users: `sip:u<N>@bench.test`.
pub const DOMAIN: &str = "bench.test";

/// The endpoint (SIP URI) of user `n`.
pub fn user_uri(n: usize) -> String {
    format!("sip:u{n}@{DOMAIN}")
}

/// The user number in a URI like `sip:u12@bench.test`.
fn user_of(uri: &str) -> Option<usize> {
    sip::uri_of(uri)
        .strip_prefix("sip:u")?
        .split('@')
        .next()?
        .parse()
        .ok()
}

/// Counters, readable at any time.
#[derive(Default)]
pub struct Stats {
    pub subscribes: AtomicU64,
    pub unsubscribes: AtomicU64,
    /// Dialogs created (initial SUBSCRIBEs that were not retransmissions).
    pub dialogs: AtomicU64,
    /// Initial NOTIFYs answered with 200.
    pub initial_acked: AtomicU64,
    /// Initial NOTIFYs sent again because no answer came.
    pub initial_retransmits: AtomicU64,
    /// Update NOTIFYs sent.
    pub updates_sent: AtomicU64,
    /// Update NOTIFYs answered with 2xx.
    pub updates_acked: AtomicU64,
    /// NOTIFYs answered with an error (481: the plugin did not know the
    /// dialog).
    pub rejected: AtomicU64,
    pub options: AtomicU64,
    /// Updates for a user with no live dialog (state kept, nothing sent).
    pub no_dialog: AtomicU64,
}

/// When a user was last changed, for the end-of-run check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truth {
    /// The note number of the last PIDF sent (0: none yet).
    pub note: u64,
    /// Whether the last dialog-info said "in a call".
    pub in_call: bool,
}

struct Dialog {
    ids: DialogIds,
    user: usize,
    /// Dialogs created before it, plus one (see
    /// [`SipServer::dialogs_created`]).
    created: u64,
    to: SocketAddr,
    next_cseq: u32,
    version: u64,
    /// The initial NOTIFY while unanswered: bytes, next retransmission,
    /// interval, first sent.
    initial: Option<(Vec<u8>, Instant, Duration, Instant)>,
}

#[derive(Default)]
struct State {
    dialogs: HashMap<String, Dialog>,
    /// The live dialog of each user and package.
    current: HashMap<(usize, Package), String>,
    /// Dialogs whose initial NOTIFY awaits an answer.
    pending: HashSet<String>,
    truth: Vec<Truth>,
    next_tag: u64,
}

impl State {
    fn truth(&mut self, user: usize) -> &mut Truth {
        if self.truth.len() <= user {
            self.truth.resize(user + 1, Truth::default());
        }
        &mut self.truth[user]
    }

    /// The body that describes `user` now.
    fn body(&mut self, user: usize, pkg: Package, version: u64) -> String {
        let t = *self.truth(user);
        match pkg {
            Package::Presence => sip::pidf(&user_uri(user), t.note),
            Package::Dialog => sip::dialog_info(&user_uri(user), version, t.in_call),
        }
    }
}

/// Nanosecond send times of updates by note number, for latency.
pub struct Stamps {
    pub epoch: Instant,
    pub at: Vec<AtomicU64>,
}

impl Stamps {
    pub fn new(epoch: Instant, n: usize) -> Stamps {
        Stamps {
            epoch,
            at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// One update to send.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    pub user: usize,
    pub package: Package,
    /// For presence: the note number (unique in the run).
    pub note: u64,
}

/// The server.
pub struct SipServer {
    sock: Arc<UdpSocket>,
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// A loopback UDP socket with buffers as large as the system allows.
pub fn big_socket() -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    Ok(s.into())
}

impl SipServer {
    /// Start on a free loopback port.
    pub fn start() -> anyhow::Result<SipServer> {
        let sock = Arc::new(big_socket()?);
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = sock.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (sock, state, stats, stop) =
                (sock.clone(), state.clone(), stats.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("sip-server".into())
                    .spawn(move || receive(&sock, &state, &stats, &stop))?,
            );
        }
        {
            let (sock, state, stats, stop) =
                (sock.clone(), state.clone(), stats.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("sip-retransmit".into())
                    .spawn(move || retransmit(&sock, &state, &stats, &stop))?,
            );
        }
        Ok(SipServer {
            sock,
            addr,
            state,
            stats,
            stop,
            threads,
        })
    }

    /// How many users have a live dialog for `pkg` whose initial NOTIFY
    /// was answered.
    pub fn established(&self, pkg: Package) -> usize {
        let st = self.state.lock().unwrap();
        st.current
            .iter()
            .filter(|((_, p), call_id)| {
                *p == pkg
                    && st
                        .dialogs
                        .get(*call_id)
                        .is_some_and(|d| d.initial.is_none())
            })
            .count()
    }

    /// Dialogs created so far: a mark for [`SipServer::established_after`].
    pub fn dialogs_created(&self) -> u64 {
        self.state.lock().unwrap().next_tag
    }

    /// Like [`SipServer::established`], counting only users whose live
    /// dialog was created after `mark` (a value of
    /// [`SipServer::dialogs_created`]): those a restarted hub subscribed
    /// anew, each user once however often it re-subscribed.
    pub fn established_after(&self, pkg: Package, mark: u64) -> usize {
        let st = self.state.lock().unwrap();
        st.current
            .iter()
            .filter(|((_, p), call_id)| {
                *p == pkg
                    && st
                        .dialogs
                        .get(*call_id)
                        .is_some_and(|d| d.initial.is_none() && d.created > mark)
            })
            .count()
    }

    /// What each user should show now (index: user number).
    pub fn truth(&self) -> Vec<Truth> {
        self.state.lock().unwrap().truth.clone()
    }

    /// Apply updates to the users' state and render them as NOTIFYs
    /// within their live dialogs, without sending them. A user without a
    /// live dialog (being re-subscribed) changes all the same: the initial
    /// NOTIFY of the next dialog carries it.
    pub fn render(&self, updates: &[Update]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.render_stamped(updates)
            .into_iter()
            .map(|(to, b, _)| (to, b))
            .collect()
    }

    fn render_stamped(&self, updates: &[Update]) -> Vec<(SocketAddr, Vec<u8>, Option<u64>)> {
        let mut out = Vec::with_capacity(updates.len());
        let mut st = self.state.lock().unwrap();
        for u in updates {
            match u.package {
                Package::Presence => st.truth(u.user).note = u.note,
                Package::Dialog => {
                    let t = st.truth(u.user);
                    t.in_call = !t.in_call;
                }
            }
            let Some(call_id) = st.current.get(&(u.user, u.package)).cloned() else {
                self.stats.no_dialog.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(d) = st.dialogs.get_mut(&call_id) else {
                continue;
            };
            d.version += 1;
            let (cseq, version, user, to) = (d.next_cseq, d.version, d.user, d.to);
            d.next_cseq += 1;
            let ids = d.ids.clone();
            let body = st.body(user, u.package, version);
            let bytes = sip::notify(&ids, cseq, "active;expires=3600", &body, self.addr.port());
            let stamp = (u.package == Package::Presence).then_some(u.note);
            out.push((to, bytes, stamp));
        }
        out
    }

    /// Apply and send updates (see [`SipServer::render`]); returns how many
    /// NOTIFYs were sent. With `stamps`, the send time of each presence
    /// update is kept under its note number.
    pub fn send(&self, updates: &[Update], stamps: Option<&Stamps>) -> usize {
        let mut n = 0;
        for (to, bytes, stamp) in self.render_stamped(updates) {
            if let (Some(s), Some(note)) = (stamps, stamp)
                && let Some(slot) = s.at.get(note as usize)
            {
                slot.store(s.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            if self.sock.send_to(&bytes, to).is_ok() {
                n += 1;
            }
        }
        self.stats
            .updates_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Update NOTIFYs sent and not (yet) answered.
    pub fn outstanding(&self) -> u64 {
        let s = &self.stats;
        s.updates_sent.load(Ordering::Relaxed).saturating_sub(
            s.updates_acked.load(Ordering::Relaxed) + s.rejected.load(Ordering::Relaxed),
        )
    }
}

impl Drop for SipServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn receive(sock: &UdpSocket, state: &Mutex<State>, stats: &Stats, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let Some(m) = Msg::parse(&buf[..n]) else {
            continue;
        };
        if let Some(code) = m.code() {
            on_response(&m, code, state, stats);
            continue;
        }
        let reply = match m.method() {
            Some("SUBSCRIBE") => on_subscribe(&m, from, port, state, stats),
            Some("OPTIONS") => {
                stats.options.fetch_add(1, Ordering::Relaxed);
                vec![sip::response(&m, 200, "OK", Some("srv"), "")]
            }
            Some("ACK") | None => vec![],
            Some(_) => vec![sip::response(
                &m,
                405,
                "Method Not Allowed",
                Some("srv"),
                "",
            )],
        };
        for r in reply {
            let _ = sock.send_to(&r, from);
        }
    }
}

/// A response of the hub to one of our NOTIFYs.
fn on_response(m: &Msg, code: u16, state: &Mutex<State>, stats: &Stats) {
    let Some((cseq, "NOTIFY")) = m.cseq() else {
        return;
    };
    if cseq > 1 {
        // An update: counted without looking at the dialog.
        if (200..300).contains(&code) {
            stats.updates_acked.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let Some(call_id) = m.header("call-id") else {
        return;
    };
    let mut st = state.lock().unwrap();
    if let Some(d) = st.dialogs.get_mut(call_id)
        && d.initial.is_some()
    {
        if (200..300).contains(&code) {
            d.initial = None;
            st.pending.remove(call_id);
            stats.initial_acked.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A SUBSCRIBE: the answer and, for a new dialog, the initial NOTIFY.
fn on_subscribe(
    m: &Msg,
    from: SocketAddr,
    port: u16,
    state: &Mutex<State>,
    stats: &Stats,
) -> Vec<Vec<u8>> {
    stats.subscribes.fetch_add(1, Ordering::Relaxed);
    let (Some(call_id), Some(pkg), Some(user)) = (
        m.header("call-id"),
        m.header("event").and_then(Package::parse),
        m.request_uri()
            .and_then(user_of)
            .or_else(|| m.header("to").and_then(user_of)),
    ) else {
        return vec![sip::response(m, 489, "Bad Event", Some("srv"), "")];
    };
    let expires = m.int_header("expires").unwrap_or(3600);
    let mut st = state.lock().unwrap();
    if let Some(d) = st.dialogs.get(call_id) {
        // A refresh, an unsubscribe or a retransmission of the first one.
        let tag = d.ids.notifier_tag.clone();
        let ok = sip::response(
            m,
            200,
            "OK",
            Some(&tag),
            &format!("Contact: <sip:127.0.0.1:{port}>\r\nExpires: {expires}\r\n"),
        );
        if expires > 0 {
            return vec![ok];
        }
        stats.unsubscribes.fetch_add(1, Ordering::Relaxed);
        let mut d = st.dialogs.remove(call_id).expect("looked up");
        st.pending.remove(call_id);
        if st.current.get(&(d.user, pkg)).map(String::as_str) == Some(call_id) {
            st.current.remove(&(d.user, pkg));
        }
        d.version += 1;
        let body = st.body(d.user, pkg, d.version);
        let last = sip::notify(
            &d.ids,
            d.next_cseq,
            "terminated;reason=timeout",
            &body,
            port,
        );
        return vec![ok, last];
    }
    if expires == 0 {
        return vec![sip::response(m, 200, "OK", Some("srv"), "Expires: 0\r\n")];
    }
    st.next_tag += 1;
    let tag = format!("s{}", st.next_tag);
    let ids = DialogIds {
        call_id: call_id.to_string(),
        subscriber: m.header("from").unwrap_or("").to_string(),
        notifier: sip::uri_of(m.header("to").unwrap_or("")).to_string(),
        notifier_tag: tag.clone(),
        contact_uri: m
            .header("contact")
            .map(|c| sip::uri_of(c).to_string())
            .unwrap_or_else(|| format!("sip:hub@{from}")),
        package: pkg,
    };
    let body = st.body(user, pkg, 0);
    let initial = sip::notify(&ids, 1, &format!("active;expires={expires}"), &body, port);
    let now = Instant::now();
    let created = st.next_tag;
    st.dialogs.insert(
        call_id.to_string(),
        Dialog {
            ids,
            user,
            created,
            to: from,
            next_cseq: 2,
            version: 0,
            initial: Some((
                initial.clone(),
                now + Duration::from_millis(500),
                Duration::from_millis(500),
                now,
            )),
        },
    );
    st.pending.insert(call_id.to_string());
    st.current.insert((user, pkg), call_id.to_string());
    stats.dialogs.fetch_add(1, Ordering::Relaxed);
    let ok = sip::response(
        m,
        200,
        "OK",
        Some(&tag),
        &format!("Contact: <sip:127.0.0.1:{port}>\r\nExpires: {expires}\r\n"),
    );
    vec![ok, initial]
}

/// Send unanswered initial NOTIFYs again (T1 doubling to T2, for 32 s), as
/// a UDP notifier's transaction layer does.
fn retransmit(sock: &UdpSocket, state: &Mutex<State>, stats: &Stats, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let now = Instant::now();
        let mut again = Vec::new();
        {
            let mut st = state.lock().unwrap();
            let pending: Vec<String> = st.pending.iter().cloned().collect();
            for call_id in pending {
                let Some(d) = st.dialogs.get_mut(&call_id) else {
                    st.pending.remove(&call_id);
                    continue;
                };
                let Some((bytes, next, interval, first)) = d.initial.as_mut() else {
                    st.pending.remove(&call_id);
                    continue;
                };
                if now.duration_since(*first) > Duration::from_secs(32) {
                    // Given up (the subscriber's Timer N starts it anew).
                    let (user, pkg) = (d.user, d.ids.package);
                    st.dialogs.remove(&call_id);
                    st.pending.remove(&call_id);
                    if st.current.get(&(user, pkg)) == Some(&call_id) {
                        st.current.remove(&(user, pkg));
                    }
                    continue;
                }
                if now >= *next {
                    *interval = (*interval * 2).min(Duration::from_secs(4));
                    *next = now + *interval;
                    again.push((d.to, bytes.clone()));
                }
            }
        }
        for (to, bytes) in again {
            stats.initial_retransmits.fetch_add(1, Ordering::Relaxed);
            let _ = sock.send_to(&bytes, to);
        }
    }
}

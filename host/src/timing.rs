//! Every timing constant of the host in one table, so that how long things
//! may take, and how they relate, can be read in one place.

use std::time::Duration;

/// How often the wasm epoch advances; plugins' CPU deadlines are counted in
/// these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A stream or WebSocket connect (with its TLS handshake and upgrade) gives
/// up after this, unless the plugin asks otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An outbound HTTP request gives up after this, unless the plugin asks
/// otherwise.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// After the `shutdown` event a run keeps its I/O for at most this long, so
/// its goodbyes (SIP un-SUBSCRIBEs with their digest challenges, Graph
/// subscription deletes) are sent and answered.
pub const GOODBYE_GRACE: Duration = Duration::from_secs(3);

/// Within the grace, a run with no HTTP request in flight that has received
/// nothing for this long is done saying goodbye.
pub const GOODBYE_QUIET: Duration = Duration::from_millis(250);

/// How long the hub waits for each instance to stop when it shuts down
/// (the goodbye grace included).
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// How often the presence service looks at the clock: sources whose
/// validity lapsed or that went stale, notes and force-subscribes that
/// ended. A source's age is therefore known to within this.
pub const PRESENCE_TICK: Duration = Duration::from_secs(2);

/// How often the listener's certificate and key files are looked at for a
/// renewal (`SIGHUP` reloads at once).
pub const TLS_RELOAD_POLL: Duration = Duration::from_secs(5);

/// A guest call's deadline is CPU time (see `runtime::call_clock`); a call
/// that has waited this many times its deadline in wall-clock time ends
/// anyway, however little CPU it got.
pub const CALL_WALL_FACTOR: u32 = 20;

/// A sync write that failed is made again after this, doubling with each
/// failure up to [`SYNC_RETRY_MAX`] (or after the platform's Retry-After).
pub const SYNC_RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between two tries of a failing sync write.
pub const SYNC_RETRY_MAX: Duration = Duration::from_secs(300);

/// After the hub lifted its do-not-disturb somewhere, a do-not-disturb
/// seen there within this long, until the platform has shown no DND once,
/// is the tail of its own write (Graph catches up in seconds, at worst
/// minutes), not the person's.
pub const SYNC_ECHO_GRACE: Duration = Duration::from_secs(120);

/// A sync write whose outcome has not come after this long is taken as
/// failed and made again (an outcome lost, a plugin that owes one).
pub const SYNC_WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// After a restart the sync's stored holds are not lifted until every
/// running connector of the user has reported, for at most this long: a
/// call still going on keeps its DND elsewhere without a flap.
pub const SYNC_RESTART_SETTLE: Duration = Duration::from_secs(60);

/// Default time a client has to send a request's head (HUB_HEADER_TIMEOUT_MS);
/// it is also the longest a keep-alive API connection waits for its next
/// request. Short: a browser sends a head in one go.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a request's whole body has to arrive, counted from its head
/// (HUB_BODY_TIMEOUT_MS): a 64 MiB plugin upload takes ~6 s at 100 Mbit/s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Default time an API connection may move no byte either way while a
/// request is handled or answered (HUB_IDLE_TIMEOUT_MS). Longer than the
/// live feed's keep-alive ([`FEED_KEEPALIVE`]) and than the slowest handler
/// (a plugin compile).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the live feed sends something to a quiet client (an SSE
/// comment, a WebSocket ping), so idle connections are told from dead ones.
pub const FEED_KEEPALIVE: Duration = Duration::from_secs(15);

/// When accepting API connections fails for want of descriptors or memory,
/// the first wait before trying again; it doubles up to
/// [`ACCEPT_BACKOFF_MAX`].
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// At shutdown, how long open API connections may take to finish their
/// request before they are closed.
pub const SERVE_DRAIN: Duration = Duration::from_secs(3);

/// A live-feed WebSocket client that cannot take a message within this is
/// cut off (it holds at most that one message meanwhile).
pub const FEED_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The same for the first message, the snapshot, which can be tens of MB.
pub const FEED_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// When the API's connections are all taken and one that never sent a
/// request head is closed for a new one, how long the new one waits for
/// that slot before it is refused.
pub const EVICT_WAIT: Duration = Duration::from_millis(200);

/// A directory sync (connect, bind, every page of the search) gives up
/// after this.
pub const DIRECTORY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the directory sync's scheduler looks whether a sync is due;
/// a scheduled sync starts within this of its time.
pub const DIRECTORY_SCHEDULE_TICK: Duration = Duration::from_secs(1);

/// The shortest schedule a directory sync accepts (`interval_seconds`),
/// so a directory is not searched in a tight loop.
pub const DIRECTORY_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// A cluster node's heartbeat and its connector instances' leases last
/// this long in the database (its clock) without renewal: a node that dies
/// has its instances taken by others within this plus [`LEASE_CHECK`].
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// How often a cluster node renews its heartbeat and leases and looks for
/// instances to take: under a third of [`LEASE_TTL`], so two renewals may
/// fail (a slow database) before a lease lapses.
pub const LEASE_CHECK: Duration = Duration::from_millis(1500);

/// A node that joins takes over its share of instances from others only
/// after it has been alive this long, so a node that flaps does not move
/// connectors back and forth.
pub const REBALANCE_SETTLE: Duration = Duration::from_secs(10);

/// A cluster node reads the cluster log at least this often even when no
/// notification arrives (one lost with a dropped connection).
pub const CLUSTER_LOG_POLL: Duration = Duration::from_secs(1);

/// How long the cluster log keeps messages; the latest presence of every
/// endpoint stays in the store beyond it.
pub const CLUSTER_LOG_KEEP: Duration = Duration::from_secs(3600);

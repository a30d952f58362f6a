//! A real Kamailio presence server and call proxy on 127.0.0.1, started and
//! stopped by the tests, plus sipp user agents to drive it.
//!
//! Each [`Kamailio`] runs `tests/kamailio/kamailio.cfg` on its own port
//! (UDP and TCP), with its own temporary directory holding the db_text
//! tables, the pid file, the runtime dir and the log. Several may run at
//! once. See `tests/kamailio/README.md` for what the configuration does.
//!
//! The binaries come from Debian packages: run `.ci/install-test-deps.sh`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How SUBSCRIBE and PUBLISH from the local domain are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No challenge.
    None,
    /// `401 Unauthorized` with `WWW-Authenticate` (Digest, MD5, qop="auth").
    Www,
    /// `407 Proxy Authentication Required` with `Proxy-Authenticate`.
    Proxy,
}

/// The users in the `subscriber` table; each one's password is
/// [`password`]`(user)`.
pub const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "hub"];

/// The digest password of a test user: `secret-<user>`.
pub fn password(user: &str) -> String {
    format!("secret-{user}")
}

/// How long [`Kamailio::start`] waits for the server to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

fn repo_dir() -> PathBuf {
    crate::root().join("tests/kamailio")
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn module_dir() -> Option<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/usr/lib/kamailio/modules"),
        PathBuf::from("/usr/lib64/kamailio/modules"),
    ];
    if let Ok(rd) = fs::read_dir("/usr/lib") {
        for e in rd.flatten() {
            dirs.push(e.path().join("kamailio/modules"));
        }
    }
    dirs.into_iter().find(|d| d.join("presence.so").is_file())
}

/// Are `kamailio`, its presence modules and `sipp` installed?
pub fn kamailio_available() -> bool {
    find_binary("kamailio").is_some() && find_binary("sipp").is_some() && module_dir().is_some()
}

fn require() -> (PathBuf, PathBuf) {
    match (find_binary("kamailio"), find_binary("sipp"), module_dir()) {
        (Some(k), Some(s), Some(_)) => (k, s),
        (k, s, m) => panic!(
            "Kamailio test peer missing (kamailio: {}, sipp: {}, presence modules: {}): \
             run `bash .ci/install-test-deps.sh` (installs the Debian packages \
             kamailio, kamailio-presence-modules and sip-tester)",
            k.is_some(),
            s.is_some(),
            m.is_some()
        ),
    }
}

fn sipp_binary() -> PathBuf {
    require().1
}

/// A port free on 127.0.0.1 for both UDP and TCP (at the time of asking).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both UDP and TCP");
}

/// A UDP port free on 127.0.0.1 (at the time of asking).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a UDP socket")
        .port()
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2); a negative pid addresses a process group.
    unsafe {
        kill(pid, sig);
    }
}

/// Live (non-zombie) processes of a process group, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may contain spaces.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[0] != "X" && f[2].parse::<u32>().ok() == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// A resource list served by the RLS: `SUBSCRIBE sip:<name>@<domain>` with
/// `Supported: eventlist`, from `sip:<owner>@<domain>`, gets the state of
/// all `members` (user names or full SIP URIs): their presence with `Event:
/// presence`, their dialog state with `Event: dialog` (a busy lamp field
/// list).
#[derive(Clone, Debug)]
pub struct ResourceList {
    pub owner: String,
    pub name: String,
    pub members: Vec<String>,
}

/// A running Kamailio.
pub struct Kamailio {
    /// UDP and TCP port on 127.0.0.1.
    pub port: u16,
    /// The SIP domain of the users (`127.0.0.1`).
    pub domain: String,
    pub auth: AuthMode,
    dir: tempfile::TempDir,
    pid: u32,
    child: Option<Child>,
    lists: Vec<ResourceList>,
    sipp_runs: AtomicU32,
    /// SIP-ETag of the last PUBLISH per user, so the next one replaces it.
    etags: Mutex<HashMap<String, String>>,
    /// Extra `-A` defines of kamailio.cfg (e.g. `LOG_LEVEL=1`).
    defines: Vec<String>,
    /// Shared memory (`-m`), MiB.
    shm_mib: u32,
}

impl Kamailio {
    /// Start a Kamailio on a free port with fresh data.
    pub fn start(auth: AuthMode) -> Kamailio {
        Self::start_with_lists(auth, &[])
    }

    /// Start a Kamailio on a free port with fresh data and these resource
    /// lists (more can be set later with [`Kamailio::set_lists`]).
    pub fn start_with_lists(auth: AuthMode, lists: &[ResourceList]) -> Kamailio {
        Self::start_with_options(auth, lists, &[], 64)
    }

    /// Like [`Kamailio::start_with_lists`], with extra `-A` defines of
    /// kamailio.cfg, such as `LOG_LEVEL=1` and `NO_LOG_BODIES` (quiet, for
    /// benchmarks), and `shm_mib` MiB of shared memory instead of 64 (each
    /// transaction stays there for its wait time, 5 s: a high request rate
    /// needs more).
    pub fn start_with_options(
        auth: AuthMode,
        lists: &[ResourceList],
        defines: &[&str],
        shm_mib: u32,
    ) -> Kamailio {
        require();
        let dir = tempfile::Builder::new()
            .prefix("kamailio-e2e-")
            .tempdir()
            .expect("temp dir");
        let db = dir.path().join("db");
        fs::create_dir_all(&db).unwrap();
        for e in fs::read_dir(repo_dir().join("db")).expect("tests/kamailio/db") {
            let e = e.unwrap();
            fs::copy(e.path(), db.join(e.file_name())).unwrap();
        }
        fs::create_dir_all(dir.path().join("run")).unwrap();
        let mut k = Kamailio {
            port: 0,
            domain: "127.0.0.1".to_string(),
            auth,
            dir,
            pid: 0,
            child: None,
            lists: lists.to_vec(),
            sipp_runs: AtomicU32::new(0),
            etags: Mutex::new(HashMap::new()),
            defines: defines.iter().map(|d| d.to_string()).collect(),
            shm_mib,
        };
        k.write_lists();
        // The port is free when picked but another process may take it
        // before Kamailio binds it: then try another one.
        for attempt in 0.. {
            k.port = free_port();
            match k.spawn() {
                Ok(()) => return k,
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!(
                    "Kamailio did not start on port {} within {:?}; its log:\n{log}",
                    k.port, START_TIMEOUT
                ),
            }
        }
        unreachable!()
    }

    /// The temporary directory of this instance (db/, run/, kamailio.log,
    /// sipp logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's UDP/TCP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `sip:127.0.0.1:<port>`, the server's own URI (Contact of its NOTIFYs).
    pub fn server_uri(&self) -> String {
        format!("sip:127.0.0.1:{}", self.port)
    }

    /// The address-of-record of a user: `sip:<user>@<domain>`.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.domain)
    }

    /// The process id of the main Kamailio process (0 when stopped).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("kamailio.log")
    }

    /// Kamailio's log (stderr) so far, across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let (kamailio, _) = require();
        let d = self.dir.path();
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        {
            use std::io::Write;
            let _ = writeln!(
                log,
                "==== e2e: starting kamailio on 127.0.0.1:{} (auth {:?}) ====",
                self.port, self.auth
            );
        }
        let log_start = self.log().len();
        let mut cmd = Command::new(kamailio);
        cmd.arg("-DD") // stay in the foreground; children are forked
            .arg("-E") // log to stderr
            .arg("-f")
            .arg(repo_dir().join("kamailio.cfg"))
            .arg("-P")
            .arg(d.join("run/kamailio.pid"))
            .arg("-Y")
            .arg(d.join("run"))
            .arg("-w")
            .arg(d)
            .arg("-m")
            .arg(self.shm_mib.to_string())
            .args(["-M", "8"])
            .arg("-A")
            .arg(format!("LISTEN_PORT={}", self.port))
            .arg("-A")
            .arg(format!("DBURL=\"text://{}\"", d.join("db").display()))
            .arg("-A")
            .arg(format!("SELF_URI=\"sip:127.0.0.1:{}\"", self.port))
            .arg("-A")
            .arg(format!("RLS_URI=\"sip:rls@127.0.0.1:{}\"", self.port))
            .arg("-A")
            .arg(format!("SIP_DOMAIN=\"{}\"", self.domain));
        for d in &self.defines {
            cmd.arg("-A").arg(d);
        }
        match self.auth {
            AuthMode::None => {}
            AuthMode::Www => {
                cmd.args(["-A", "AUTH_WWW"]);
            }
            AuthMode::Proxy => {
                cmd.args(["-A", "AUTH_PROXY"]);
            }
        }
        cmd.current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            // Own process group: stop() signals Kamailio and all its children.
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn kamailio");
        self.pid = child.id();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.pid = 0;
                let log = self.log();
                return Err(format!(
                    "kamailio exited with {status}\n{}",
                    &log[log_start.min(log.len())..]
                ));
            }
            if options_ping(self.port, Duration::from_millis(200)) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                signal(-(self.pid as i32), SIGKILL);
                let _ = child.wait();
                self.pid = 0;
                let log = self.log();
                return Err(format!(
                    "no answer to OPTIONS\n{}",
                    &log[log_start.min(log.len())..]
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Does the server answer an OPTIONS on its UDP port right now?
    pub fn answers(&self) -> bool {
        options_ping(self.port, Duration::from_millis(500))
    }

    /// SIGTERM, then SIGKILL after 5 s; returns when Kamailio and all its
    /// children are gone. The data stays (db_text is written on shutdown).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = self.pid;
        signal(pgid as i32, SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                signal(-(pgid as i32), SIGKILL);
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Kamailio's main process waits for its children; make sure.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !group_members(pgid).is_empty() {
            if Instant::now() > deadline {
                panic!(
                    "kamailio processes {:?} of group {pgid} survive SIGKILL",
                    group_members(pgid)
                );
            }
            signal(-(pgid as i32), SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.pid = 0;
    }

    /// Kill the whole process group with SIGKILL, no shutdown (db_text
    /// changes since start are lost).
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = self.pid;
        signal(-(pgid as i32), SIGKILL);
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !group_members(pgid).is_empty() && Instant::now() < deadline {
            signal(-(pgid as i32), SIGKILL);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.pid = 0;
    }

    /// Stop, then start again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Start again after [`Kamailio::stop`] or [`Kamailio::kill9`], on the
    /// same port and data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "kamailio is still running");
        // The port was ours; after a stop it may linger a moment.
        let mut last = String::new();
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if log.contains("Address already in use") => {
                    last = log;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(log) => panic!("Kamailio did not restart on port {}:\n{log}", self.port),
            }
        }
        panic!("Kamailio did not restart on port {}:\n{last}", self.port);
    }

    /// Replace the resource lists. Takes effect for new list subscriptions
    /// (db_text reloads the changed `xcap` table file on next use).
    pub fn set_lists(&mut self, lists: &[ResourceList]) {
        self.lists = lists.to_vec();
        self.write_lists();
    }

    /// The rls-services documents (one per owner) in the db_text `xcap`
    /// table, doc_type 8 (= RLS_SERVICE in Kamailio's xcap code).
    fn write_lists(&self) {
        let path = self.dir.path().join("db/xcap");
        let header = fs::read_to_string(repo_dir().join("db/xcap")).unwrap();
        let mut text = header.lines().next().unwrap().to_string();
        text.push('\n');
        let mut owners: Vec<&str> = self.lists.iter().map(|l| l.owner.as_str()).collect();
        owners.sort();
        owners.dedup();
        for (i, owner) in owners.iter().enumerate() {
            let mut doc = String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\" \
                 xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n",
            );
            for l in self.lists.iter().filter(|l| l.owner == *owner) {
                let _ = writeln!(doc, "  <service uri=\"{}\">", self.aor(&l.name));
                let _ = writeln!(doc, "    <list name=\"{}\">", l.name);
                for m in &l.members {
                    let uri = if m.contains(':') {
                        m.clone()
                    } else {
                        self.aor(m)
                    };
                    let _ = writeln!(doc, "      <rl:entry uri=\"{uri}\"/>");
                }
                // Every list serves presence and dialog state (a BLF
                // list); Kamailio's rls takes the package from the
                // SUBSCRIBE's Event (`rls_event`), these are for the reader.
                doc.push_str(
                    "    </list>\n    <packages><package>presence</package>\
                     <package>dialog</package></packages>\n  </service>\n",
                );
            }
            doc.push_str("</rls-services>\n");
            let doc_uri = format!(
                "/xcap-root/rls-services/users/sip:{owner}@{}/index",
                self.domain
            );
            let _ = writeln!(
                text,
                "{}:{}:{}:{}:8:e2e{}:0:{}:0",
                i + 1,
                dbtext_escape(owner),
                dbtext_escape(&self.domain),
                dbtext_escape(&doc),
                i + 1,
                dbtext_escape(&doc_uri)
            );
        }
        let old_mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
        fs::write(&path, text).unwrap();
        // db_text notices a change by the file's mtime in whole seconds:
        // make sure it moves even within the same second.
        if let Some(old) = old_mtime {
            let now = SystemTime::now();
            let next = old + Duration::from_secs(1);
            let f = fs::File::options().write(true).open(&path).unwrap();
            let _ = f.set_modified(if now > next { now } else { next });
        }
    }

    fn sipp_files(&self, what: &str) -> (PathBuf, PathBuf, PathBuf) {
        let n = self.sipp_runs.fetch_add(1, Ordering::SeqCst);
        let d = self.dir.path();
        (
            d.join(format!("sipp-{n:03}-{what}.out")),
            d.join(format!("sipp-{n:03}-{what}-errors.log")),
            d.join(format!("sipp-{n:03}-{what}-messages.log")),
        )
    }

    /// A sipp command against this server with logs in the temp dir.
    fn sipp(&self, scenario: &str, local_port: u16, what: &str) -> (Command, [PathBuf; 3]) {
        let (out, err, msg) = self.sipp_files(what);
        let mut cmd = Command::new(sipp_binary());
        cmd.arg(format!("127.0.0.1:{}", self.port))
            .arg("-sf")
            .arg(repo_dir().join("sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-p"])
            .arg(local_port.to_string())
            .args(["-key", "domain"])
            .arg(&self.domain)
            .args(["-nostdin", "-trace_err", "-trace_msg"])
            .arg("-error_file")
            .arg(&err)
            .arg("-message_file")
            .arg(&msg)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(
                fs::OpenOptions::new().append(true).open(&out).unwrap(),
            ));
        (cmd, [out, err, msg])
    }

    /// A sipp UAS registered as `user` that answers each INVITE with 180,
    /// then 200 after `hold_ms`, and waits for the BYE. It runs until
    /// dropped (at most 10 minutes) and unregisters on drop.
    pub fn sipp_register_uas(&self, user: &str, hold_ms: u64) -> SippProcess {
        let uas_port = free_udp_port();
        let (mut cmd, files) = self.sipp("uas.xml", uas_port, &format!("uas-{user}"));
        cmd.args(["-s", user, "-d"])
            .arg(hold_ms.to_string())
            .args(["-timeout", "600s"])
            .process_group(0);
        let child = cmd.spawn().expect("spawn sipp");
        let mut uas = SippProcess {
            child: Some(child),
            files,
            unregister: None,
        };
        // Wait until sipp has bound its port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", uas_port)).is_ok() {
            if let Ok(Some(s)) = uas.child.as_mut().unwrap().try_wait() {
                panic!("sipp UAS exited with {s}:\n{}", uas.output());
            }
            assert!(
                Instant::now() < deadline,
                "sipp UAS did not bind port {uas_port}:\n{}",
                uas.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.sipp_register(user, uas_port, 600);
        assert!(
            status.success(),
            "REGISTER of {user} failed ({status}); kamailio log tail:\n{}",
            tail(&self.log(), 30)
        );
        uas.unregister = Some(Unregister {
            kamailio_port: self.port,
            domain: self.domain.clone(),
            user: user.to_string(),
            contact_port: uas_port,
            dir: self.dir.path().to_path_buf(),
        });
        uas
    }

    /// REGISTER `sip:<user>@<domain>` with contact `127.0.0.1:<contact_port>`
    /// (expires 0 removes it); waits for the result.
    pub fn sipp_register(&self, user: &str, contact_port: u16, expires: u32) -> ExitStatus {
        let (mut cmd, files) = self.sipp("register.xml", free_udp_port(), &format!("reg-{user}"));
        cmd.args(["-m", "1", "-s", user, "-au", user, "-ap"])
            .arg(password(user))
            .args(["-key", "contact_port"])
            .arg(contact_port.to_string())
            .args(["-key", "expires"])
            .arg(expires.to_string())
            .args(["-timeout", "10s", "-timeout_error"]);
        run_bounded(cmd, Duration::from_secs(20), &files)
    }

    /// A call from `from` to `to` through the proxy: INVITE, ACK, `talk_ms`
    /// in the call, BYE. Waits for the end of the call.
    pub fn sipp_call(&self, from: &str, to: &str, talk_ms: u64) -> ExitStatus {
        let (mut cmd, files) = self.sipp("uac.xml", free_udp_port(), &format!("call-{from}-{to}"));
        let limit = talk_ms / 1000 + 40;
        cmd.args(["-m", "1", "-s", to, "-key", "caller", from, "-d"])
            .arg(talk_ms.to_string())
            .arg("-timeout")
            .arg(format!("{limit}s"))
            .arg("-timeout_error");
        run_bounded(cmd, Duration::from_secs(limit + 10), &files)
    }

    /// PUBLISH (Event: presence) `pidf` for `user`, answering a digest
    /// challenge with the user's password. Panics unless it gets a 200.
    ///
    /// The kit remembers the SIP-ETag of each user's last publication and
    /// sends it as SIP-If-Match, so a new PUBLISH *replaces* the user's
    /// state (Kamailio would otherwise aggregate both documents, keeping
    /// the first tuple of a given id). `expires` 0 removes the publication.
    pub fn sipp_publish(&self, user: &str, pidf: &str, expires: u32) {
        let status = self.try_sipp_publish(user, pidf, expires);
        assert!(
            status.success(),
            "PUBLISH for {user} failed ({status}); kamailio log tail:\n{}",
            tail(&self.log(), 40)
        );
    }

    /// Like [`Kamailio::sipp_publish`] but returns sipp's exit status.
    pub fn try_sipp_publish(&self, user: &str, pidf: &str, expires: u32) -> ExitStatus {
        let etag = self.etags.lock().unwrap().get(user).cloned();
        let status = self.publish_once(user, pidf, expires, etag.as_deref());
        if status.success() || etag.is_none() {
            return status;
        }
        // The old publication expired or is unknown (412): start afresh.
        self.etags.lock().unwrap().remove(user);
        self.publish_once(user, pidf, expires, None)
    }

    /// Forget the ETag of `user`'s last PUBLISH: the next one adds a
    /// separate publication instead of replacing it.
    pub fn forget_publication(&self, user: &str) {
        self.etags.lock().unwrap().remove(user);
    }

    fn publish_once(&self, user: &str, pidf: &str, expires: u32, etag: Option<&str>) -> ExitStatus {
        let (mut cmd, files) = self.sipp("publish.xml", free_udp_port(), &format!("pub-{user}"));
        let if_match = match etag {
            Some(e) => format!("SIP-If-Match: {e}"),
            None => "X-E2E-Initial: 1".to_string(),
        };
        cmd.args(["-m", "1", "-s", user, "-au", user, "-ap"])
            .arg(password(user))
            .args(["-key", "expires"])
            .arg(expires.to_string())
            .args(["-key", "if_match", &if_match])
            .args(["-key", "body", pidf])
            .args(["-timeout", "10s", "-timeout_error"]);
        let status = run_bounded(cmd, Duration::from_secs(20), &files);
        if status.success() {
            let trace = fs::read_to_string(&files[2]).unwrap_or_default();
            let new_etag = trace.lines().rev().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("SIP-ETag")
                    .then(|| v.trim().to_string())
            });
            let mut etags = self.etags.lock().unwrap();
            match new_etag {
                Some(e) if expires > 0 => {
                    etags.insert(user.to_string(), e);
                }
                _ => {
                    etags.remove(user);
                }
            }
        }
        status
    }

    /// SUBSCRIBE as `watcher` to `target` for `event`, answering digest
    /// challenges; expects 200 and a NOTIFY, unsubscribes and expects the
    /// final NOTIFY. Returns sipp's exit status.
    pub fn sipp_subscribe(&self, watcher: &str, target: &str, event: &str) -> ExitStatus {
        let (mut cmd, files) = self.sipp(
            "subscribe.xml",
            free_udp_port(),
            &format!("sub-{watcher}-{target}"),
        );
        cmd.args(["-m", "1", "-s", watcher, "-au", watcher, "-ap"])
            .arg(password(watcher))
            .args(["-key", "target", target, "-key", "event", event])
            .args(["-timeout", "15s", "-timeout_error"]);
        run_bounded(cmd, Duration::from_secs(25), &files)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let running = self.child.is_some();
        self.stop();
        if std::thread::panicking() && running {
            eprintln!(
                "kamailio (port {}) log tail:\n{}",
                self.port,
                tail(&self.log(), 60)
            );
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn dbtext_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ':' => out.push_str("\\:"),
            c => out.push(c),
        }
    }
    out
}

/// Send `OPTIONS sip:127.0.0.1:<port>` and wait up to `wait` for a 200.
fn options_ping(port: u16, wait: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let local = sock.local_addr().unwrap().port();
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{local};rport;branch=z9hG4bKping{nonce}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=p{nonce}\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: ping-{nonce}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    if sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_err() {
        return false;
    }
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 200") && text.contains(&format!("ping-{nonce}")) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// Run a sipp command to its end, killing it after `limit`; on failure the
/// sipp output and error log are printed to stderr.
fn run_bounded(mut cmd: Command, limit: Duration, files: &[PathBuf; 3]) -> ExitStatus {
    let mut child = cmd.process_group(0).spawn().expect("spawn sipp");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            signal(-(child.id() as i32), SIGKILL);
            let s = child.wait().unwrap();
            eprintln!("sipp killed after {limit:?}");
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        eprintln!("{}", sipp_report(files));
    }
    status
}

fn sipp_report(files: &[PathBuf; 3]) -> String {
    let mut s = String::new();
    for f in files {
        if let Ok(text) = fs::read_to_string(f) {
            let _ = writeln!(s, "--- {}:\n{}", f.display(), tail(&text, 80));
        }
    }
    s
}

struct Unregister {
    kamailio_port: u16,
    domain: String,
    user: String,
    contact_port: u16,
    dir: PathBuf,
}

/// A sipp process running in the background; killed (and its registration
/// removed) on drop.
pub struct SippProcess {
    child: Option<Child>,
    files: [PathBuf; 3],
    unregister: Option<Unregister>,
}

impl SippProcess {
    /// sipp's screen output, error log and message trace so far.
    pub fn output(&self) -> String {
        sipp_report(&self.files)
    }

    /// Has sipp exited (e.g. after its `-timeout`)?
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The SIP messages sipp sent and received so far.
    pub fn messages(&self) -> String {
        fs::read_to_string(&self.files[2]).unwrap_or_default()
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(-(c.id() as i32), SIGKILL);
            let _ = c.wait();
        }
        // Best effort: remove the binding so later calls do not go to a dead
        // port. Short timeout: the server may be gone already.
        if let Some(u) = self.unregister.take() {
            let Some(sipp) = find_binary("sipp") else {
                return;
            };
            let child = Command::new(sipp)
                .arg(format!("127.0.0.1:{}", u.kamailio_port))
                .arg("-sf")
                .arg(repo_dir().join("sipp/register.xml"))
                .args(["-i", "127.0.0.1", "-p"])
                .arg(free_udp_port().to_string())
                .args(["-m", "1", "-s", &u.user, "-au", &u.user, "-ap"])
                .arg(password(&u.user))
                .args(["-key", "domain", &u.domain, "-key", "contact_port"])
                .arg(u.contact_port.to_string())
                .args(["-key", "expires", "0", "-timeout", "3s", "-nostdin"])
                .current_dir(&u.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            if let Ok(mut c) = child {
                let deadline = Instant::now() + Duration::from_secs(5);
                while c.try_wait().ok().flatten().is_none() {
                    if Instant::now() > deadline {
                        signal(-(c.id() as i32), SIGKILL);
                        let _ = c.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// One NOTIFY a [`SipWatcher`] received, with when it arrived.
#[derive(Debug, Clone)]
pub struct Notified {
    /// When the datagram was read.
    pub at: Instant,
    /// The user subscribed to (`alice` for `sip:alice@<domain>`).
    pub target: String,
    /// The subscription's event package (`presence`, `dialog`).
    pub event: String,
    /// The Subscription-State header.
    pub subscription_state: String,
    pub body: String,
}

#[derive(Default)]
struct WatcherShared {
    stop: std::sync::atomic::AtomicBool,
    /// Call-ID -> (target, event).
    subs: Mutex<HashMap<String, (String, String)>>,
    notifies: Mutex<Vec<Notified>>,
    /// (Call-ID, status) of every response received.
    responses: Mutex<Vec<(String, u16)>>,
    changed: std::sync::Condvar,
}

/// A SIP watcher of its own on a [`Kamailio`] (no digest: use it with
/// [`AuthMode::None`]): SUBSCRIBEs over UDP from one socket, answers each
/// NOTIFY with 200 on a thread of its own and records it with the time it
/// arrived. Independent of the hub, it sees what any other watcher of the
/// server sees. Stops its thread on drop (subscriptions are left to expire).
pub struct SipWatcher {
    sock: UdpSocket,
    port: u16,
    server: SocketAddr,
    domain: String,
    user: String,
    seq: AtomicU32,
    shared: std::sync::Arc<WatcherShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The value of a header in a SIP message head (case-insensitive name,
/// compact forms for the few this kit reads).
fn sip_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    let compact = match name {
        "call-id" => "i",
        "from" => "f",
        "to" => "t",
        "via" => "v",
        _ => "",
    };
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let k = k.trim();
        (k.eq_ignore_ascii_case(name) || (!compact.is_empty() && k.eq_ignore_ascii_case(compact)))
            .then(|| v.trim())
    })
}

impl SipWatcher {
    /// A watcher named `user` (`sip:<user>@<domain>`) on `k`.
    pub fn new(k: &Kamailio, user: &str) -> SipWatcher {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the watcher's socket");
        let port = sock.local_addr().unwrap().port();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let shared = std::sync::Arc::new(WatcherShared::default());
        let thread = {
            let (sock, shared) = (sock.try_clone().unwrap(), shared.clone());
            std::thread::spawn(move || watcher_loop(sock, shared))
        };
        SipWatcher {
            sock,
            port,
            server: k.addr(),
            domain: k.domain.clone(),
            user: user.to_string(),
            seq: AtomicU32::new(0),
            shared,
            thread: Some(thread),
        }
    }

    /// The watcher's UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SUBSCRIBE to `target`'s `event` (`presence` or `dialog`) for
    /// `expires` seconds; returns at once (see [`SipWatcher::wait_active`]).
    pub fn subscribe(&self, target: &str, event: &str, expires: u32) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let call_id = format!("w-{event}-{target}-{}-{seq}", self.port);
        self.shared
            .subs
            .lock()
            .unwrap()
            .insert(call_id.clone(), (target.to_string(), event.to_string()));
        let accept = match event {
            "dialog" => "application/dialog-info+xml",
            _ => "application/pidf+xml",
        };
        let uri = format!("sip:{target}@{}", self.domain);
        let msg = format!(
            "SUBSCRIBE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bKw{seq}x{port}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag=wt{seq}x{port}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Contact: <sip:{user}@127.0.0.1:{port}>\r\n\
             Event: {event}\r\n\
             Accept: {accept}\r\n\
             Expires: {expires}\r\n\
             Content-Length: 0\r\n\r\n",
            port = self.port,
            user = self.user,
            domain = self.domain,
        );
        self.sock
            .send_to(msg.as_bytes(), self.server)
            .expect("send SUBSCRIBE");
    }

    /// Wait up to `limit` until the server accepted the subscription to
    /// `target`'s `event` with a 2xx and sent its first NOTIFY.
    pub fn wait_active(&self, target: &str, event: &str, limit: Duration) -> bool {
        let ids: Vec<String> = self
            .shared
            .subs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, (t, e))| t == target && e == event)
            .map(|(c, _)| c.clone())
            .collect();
        let accepted = |responses: &Vec<(String, u16)>| {
            responses
                .iter()
                .any(|(c, s)| (200..300).contains(s) && ids.contains(c))
        };
        let deadline = Instant::now() + limit;
        loop {
            let ok = accepted(&self.shared.responses.lock().unwrap())
                && self
                    .shared
                    .notifies
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|n| n.target == target && n.event == event);
            if ok {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every NOTIFY received so far, in order.
    pub fn notifies(&self) -> Vec<Notified> {
        self.shared.notifies.lock().unwrap().clone()
    }

    /// How many NOTIFYs were received so far.
    pub fn count(&self) -> usize {
        self.shared.notifies.lock().unwrap().len()
    }

    /// The NOTIFYs received from index `from` on (see [`SipWatcher::count`]).
    pub fn notifies_since(&self, from: usize) -> Vec<Notified> {
        let n = self.shared.notifies.lock().unwrap();
        n.get(from..).map(<[Notified]>::to_vec).unwrap_or_default()
    }

    /// The first NOTIFY from index `from` on that satisfies `f`, waiting up
    /// to `limit` for it.
    pub fn wait_for(
        &self,
        from: usize,
        limit: Duration,
        f: impl Fn(&Notified) -> bool,
    ) -> Option<Notified> {
        let deadline = Instant::now() + limit;
        let mut seen = from;
        let mut n = self.shared.notifies.lock().unwrap();
        loop {
            if let Some(hit) = n.get(seen..).and_then(|s| s.iter().find(|x| f(x))) {
                return Some(hit.clone());
            }
            seen = n.len().max(from);
            let left = deadline.checked_duration_since(Instant::now())?;
            n = self.shared.changed.wait_timeout(n, left).unwrap().0;
        }
    }
}

impl Drop for SipWatcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watcher_loop(sock: UdpSocket, shared: std::sync::Arc<WatcherShared>) {
    let mut buf = vec![0u8; 65_536];
    while !shared.stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at = Instant::now();
        let text = String::from_utf8_lossy(&buf[..n]);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let first = head.lines().next().unwrap_or_default();
        let call_id = sip_header(head, "call-id").unwrap_or_default().to_string();
        if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            if let Some(code) = rest.get(..3).and_then(|c| c.parse().ok()) {
                shared.responses.lock().unwrap().push((call_id, code));
                shared.changed.notify_all();
            }
            continue;
        }
        if !first.starts_with("NOTIFY ") {
            continue;
        }
        let mut ok = String::from("SIP/2.0 200 OK\r\n");
        for l in head.split("\r\n").skip(1) {
            let name = l.split(':').next().unwrap_or_default().trim();
            if ["via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                ok.push_str(l);
                ok.push_str("\r\n");
            }
        }
        ok.push_str("Content-Length: 0\r\n\r\n");
        let _ = sock.send_to(ok.as_bytes(), from);
        let (target, event) = shared
            .subs
            .lock()
            .unwrap()
            .get(&call_id)
            .cloned()
            .unwrap_or_default();
        shared.notifies.lock().unwrap().push(Notified {
            at,
            target,
            event,
            subscription_state: sip_header(head, "subscription-state")
                .unwrap_or_default()
                .to_string(),
            body: body.to_string(),
        });
        shared.changed.notify_all();
    }
}

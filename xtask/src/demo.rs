//! `cargo xtask demo`: the hub with a simulated presence source, so a
//! newcomer sees merged presence change live without owning a PBX.
//!
//! The hub runs as it always does (its release binary, in the background).
//! This program is an outside system to it: through the public REST API it
//! creates (once) six demo users and two `http-push` connector instances, one
//! fed by extension as a CTI bridge would, one by username as a presence
//! script would; then every second it pushes a random change to one of them
//! through the instance's public webhook `/hooks/{instance}/presence`, signed
//! as `plugins/http-push/README.md` tells any sender to sign.
//!
//! Unless told otherwise (`HUB_DATA_DIR`, or arguments for the hub), the demo
//! keeps its hub's data in `target/demo/data`, apart from a real hub's, and
//! an admin token of its own beside it. It stops, and stops the hub, on
//! Ctrl-C or when the hub exits.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Not a secret worth keeping: the demo's webhooks are on loopback.
const SECRET: &str = "demo-shared-secret-0123456789";
/// The instance fed by extension (a CTI bridge) and the one fed by username
/// (a presence script).
const TAPI: &str = "demo-tapi";
const RICH: &str = "demo-rich";
const VOICEMAIL_PILOT: &str = "9999";
const USERS: &[(&str, &str, &str)] = &[
    ("ada", "Ada Lovelace", "Engineering"),
    ("grace", "Grace Hopper", "Engineering"),
    ("alan", "Alan Turing", "Research"),
    ("edsger", "Edsger Dijkstra", "Research"),
    ("barbara", "Barbara Liskov", "Sales"),
    ("ken", "Ken Thompson", "Support"),
];
/// What the hub prints on stdout: where it listens, and the admin token at
/// the first start of a data directory.
const LISTENING: &str = "presence-hub listening on ";
const TOKEN_SHOWN: &str = "admin token (shown once, store it now): ";

/// Start the hub (`target/release/presence-hub`, already built) with
/// `hub_args`, set the demo up and push changes until the hub exits.
pub fn run(root: &Path, hub_args: &[String]) -> Result<()> {
    let mut cmd = Command::new(root.join("target/release/presence-hub"));
    cmd.args(hub_args).stdout(Stdio::piped());
    let mut token = std::env::var("HUB_ADMIN_TOKEN").ok();
    if hub_args.is_empty() && std::env::var_os("HUB_DATA_DIR").is_none() {
        let dir = root.join("target/demo");
        cmd.env("HUB_DATA_DIR", dir.join("data"));
        if token.is_none() {
            let t = own_token(&dir)?;
            cmd.env("HUB_ADMIN_TOKEN", &t);
            token = Some(t);
        }
    }
    let mut hub = Hub(cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?);
    let (base, shown) = follow_stdout(&mut hub.0)?;
    let Some(token) = token.or(shown) else {
        bail!(
            "this hub's data directory has an admin token already and the demo does not know it: \
             run the demo with HUB_ADMIN_TOKEN set to it"
        );
    };
    let api = Api::new(&base, &token);
    set_up(&api).context("setting up the demo through the REST API")?;
    announce(&base, &token);
    println!("demo: Ctrl-C stops the demo and the hub");
    push_forever(&api, Some(&mut hub.0))
}

/// Drive a hub that runs already (`cargo xtask demo --attach URL`, with
/// `HUB_ADMIN_TOKEN` set): set the demo up on it and push changes until
/// stopped. The end-to-end tests run the demo this way.
pub fn attach(base: &str) -> Result<()> {
    let token = std::env::var("HUB_ADMIN_TOKEN")
        .context("set HUB_ADMIN_TOKEN to the hub's admin token to attach to it")?;
    let base = base.trim_end_matches('/');
    let api = Api::new(base, &token);
    set_up(&api).context("setting up the demo through the REST API")?;
    announce(base, &token);
    push_forever(&api, None)
}

fn announce(base: &str, token: &str) {
    println!(
        "demo: pushing simulated presence for {} users every second through /hooks/{TAPI}/presence \
         and /hooks/{RICH}/presence",
        USERS.len()
    );
    println!("demo: admin token: {token}");
    println!(
        "demo: follow the changes with\n  curl -N -H 'Authorization: Bearer {token}' {base}/api/v1/feed/sse"
    );
}

/// Push a random change every second until the hub (the one the demo
/// started, if it did) exits.
fn push_forever(api: &Api, mut hub: Option<&mut Child>) -> Result<()> {
    let mut rng = Rng::seeded();
    let mut failures = 0;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(child) = hub.as_deref_mut()
            && let Some(status) = child.try_wait()?
        {
            if !status.success() {
                bail!("the hub exited ({status})");
            }
            println!("demo: the hub stopped");
            return Ok(());
        }
        let (instance, update) = random_change(&mut rng);
        match push(api, instance, &update) {
            Ok(()) => failures = 0,
            // A push that finds no hub because it is stopping (Ctrl-C
            // reaches both; its connectors take a moment to stop) is no news.
            Err(e)
                if e.downcast_ref::<ureq::Error>().is_some()
                    && hub
                        .as_deref_mut()
                        .is_some_and(|c| wait_for(c, Duration::from_secs(10)).is_some()) => {}
            Err(e) => {
                eprintln!("demo: push to {instance} failed: {e:#}");
                failures += 1;
                if failures == 30 {
                    bail!("30 pushes in a row failed");
                }
            }
        }
    }
}

/// The hub's process, ended when the demo ends however it ends.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SIGTERM, so that it shuts its connectors down gracefully.
            let _ = Command::new("kill").arg(self.0.id().to_string()).status();
            if wait_for(&mut self.0, Duration::from_secs(10)).is_none() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The demo's own admin token, made at its first run.
fn own_token(dir: &Path) -> Result<String> {
    let path = dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if t.len() >= 16 {
            return Ok(t.to_owned());
        }
    }
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the demo's admin token")?;
    let t = hex::encode(bytes);
    std::fs::create_dir_all(dir)?;
    std::fs::write(&path, &t).with_context(|| format!("writing {}", path.display()))?;
    Ok(t)
}

/// Pass the hub's stdout through, and return where it listens and the admin
/// token it showed, if it showed one before it started listening.
fn follow_stdout(hub: &mut Child) -> Result<(String, Option<String>)> {
    let out = hub.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            if let Some(t) = line.strip_prefix(TOKEN_SHOWN) {
                let _ = tx.send((false, t.trim().to_owned()));
            } else if let Some(url) = line.strip_prefix(LISTENING) {
                let _ = tx.send((true, url.trim().to_owned()));
            }
        }
    });
    let mut token = None;
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok((true, url)) => return Ok((url, token)),
            Ok((false, t)) => token = Some(t),
            Err(_) => bail!("the hub did not start listening (see its output above)"),
        }
    }
}

/// The hub's REST API and webhooks, as any outside client uses them.
struct Api {
    agent: ureq::Agent,
    base: String,
    auth: String,
}

impl Api {
    fn new(base: &str, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Self {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {token}"),
        }
    }

    /// `method path` with an optional JSON body; the status and the body.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut r = match (method, body) {
            ("GET", _) => self
                .agent
                .get(&url)
                .header("Authorization", &self.auth)
                .call(),
            ("POST", Some(b)) => self
                .agent
                .post(&url)
                .header("Authorization", &self.auth)
                .content_type("application/json")
                .send(serde_json::to_vec(b)?),
            ("PUT", Some(b)) => self
                .agent
                .put(&url)
                .header("Authorization", &self.auth)
                .content_type("application/json")
                .send(serde_json::to_vec(b)?),
            _ => bail!("{method} {path}: not a call the demo makes"),
        }
        .with_context(|| format!("{method} {url}"))?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Like [`call`](Self::call), failing on a status other than `ok`.
    fn expect(&self, method: &str, path: &str, body: Option<&Value>, ok: &[u16]) -> Result<Value> {
        let (status, v) = self.call(method, path, body)?;
        if !ok.contains(&status) {
            bail!("{method} {path} answered {status}: {v}");
        }
        Ok(v)
    }
}

/// Create what is missing: users, the rules that map each instance's
/// endpoints to users, the two instances.
fn set_up(api: &Api) -> Result<()> {
    for (i, (name, display, dept)) in USERS.iter().enumerate() {
        let (status, _) = api.call("GET", &format!("/api/v1/users/{name}"), None)?;
        if status == 404 {
            let user = json!({
                "username": name,
                "display_name": display,
                "department": dept,
                "email": format!("{name}@demo.example"),
                "extension": extension(i),
                "voicemail_number": VOICEMAIL_PILOT,
            });
            api.expect("POST", "/api/v1/users", Some(&user), &[201])?;
        }
    }
    let mut rules = api.expect("GET", "/api/v1/settings/rules", None, &[200])?;
    rules["instance_fields"][TAPI] = "extension".into();
    rules["instance_fields"][RICH] = "username".into();
    if rules["voicemail_pilot"].is_null() {
        rules["voicemail_pilot"] = VOICEMAIL_PILOT.into();
    }
    api.expect("PUT", "/api/v1/settings/rules", Some(&rules), &[200, 204])?;
    for id in [TAPI, RICH] {
        let (status, _) = api.call("GET", &format!("/api/v1/connectors/{id}"), None)?;
        if status == 404 {
            let connector = json!({
                "id": id,
                "plugin": "http-push",
                "config": {"shared_secret": SECRET},
            });
            api.expect("POST", "/api/v1/connectors", Some(&connector), &[201])
                .context(
                    "the demo needs the http-push plugin: run `cargo xtask plugins`, or set \
                     HUB_PLUGINS_DIR to a folder holding it (the hub's log names where it looked)",
                )?;
        }
    }
    Ok(())
}

fn extension(user: usize) -> String {
    format!("{}", 9001 + user)
}

/// Sign and send one update to `instance`'s webhook.
fn push(api: &Api, instance: &str, update: &Value) -> Result<()> {
    let body = serde_json::to_vec(update)?;
    let ts = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let url = format!("{}/hooks/{instance}/presence", api.base);
    let mut r = api
        .agent
        .post(&url)
        .header("X-Hub-Timestamp", ts.to_string())
        .header("X-Hub-Signature", signature(SECRET, ts, &body))
        .content_type("application/json")
        .send(&body[..])
        .with_context(|| format!("POST {url}"))?;
    if r.status().as_u16() != 202 {
        let text = r.body_mut().read_to_string().unwrap_or_default();
        bail!("{} {text}", r.status());
    }
    Ok(())
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `<timestamp>.<body>`,
/// keyed with the shared secret (plugins/http-push/README.md, "Signing").
fn signature(secret: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A random telephony change for `demo-tapi` or rich change for `demo-rich`.
fn random_change(rng: &mut Rng) -> (&'static str, Value) {
    let i = rng.below(USERS.len());
    let (name, _, _) = USERS[i];
    // Unix milliseconds: increasing across runs of the demo too, as the
    // plugin asks of a sender's sequence numbers.
    let sequence = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if rng.chance(50) {
        let line = ["idle", "idle", "ringing", "in-call", "on-hold"][rng.below(5)];
        let mut t = json!({"line": line, "dnd": rng.chance(10)});
        if rng.chance(15) {
            let number = if rng.chance(50) {
                VOICEMAIL_PILOT
            } else {
                "+4930123456"
            };
            t["forward"] = json!({ "number": number });
        }
        let update = json!({"endpoint": extension(i), "sequence": sequence, "telephony": t});
        (TAPI, update)
    } else {
        let (availability, activity, note) = [
            ("available", None, None),
            ("busy", Some("in-a-meeting"), Some("Weekly planning")),
            ("away", Some("be-right-back"), Some("Coffee")),
            ("do-not-disturb", Some("presenting"), None),
            ("offline", Some("off-work"), None),
        ][rng.below(5)];
        let mut r = json!({ "availability": availability });
        if let Some(a) = activity {
            r["activity"] = a.into();
        }
        if let Some(n) = note {
            r["note"] = n.into();
        }
        (
            RICH,
            json!({"endpoint": name, "sequence": sequence, "rich": r}),
        )
    }
}

/// xorshift64*: plenty for picking demo states.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same signature as the README's `openssl dgst -sha256 -hmac`
    /// recipe gives for this input.
    #[test]
    fn signs_as_the_http_push_readme_says() {
        let body = br#"{"endpoint":"1001","telephony":{"line":"in-call"}}"#;
        assert_eq!(
            signature("the-shared-secret", 1_700_000_000, body),
            "sha256=8593f2c2b8eb8aed4f9305ccb169a19441bc7cb2395f09cd0b865779ab99abb6"
        );
    }

    #[test]
    fn changes_are_valid_pushes_for_known_endpoints() {
        let mut rng = Rng(42);
        for _ in 0..200 {
            let (instance, u) = random_change(&mut rng);
            let endpoint = u["endpoint"].as_str().unwrap();
            match instance {
                TAPI => {
                    assert!((0..USERS.len()).any(|i| extension(i) == endpoint));
                    assert!(u["telephony"]["line"].is_string());
                }
                RICH => {
                    assert!(USERS.iter().any(|(n, _, _)| *n == endpoint));
                    assert!(u["rich"]["availability"].is_string());
                }
                _ => panic!("unknown instance {instance}"),
            }
            assert!(u["sequence"].as_u64().unwrap() > 1_600_000_000_000);
        }
    }
}

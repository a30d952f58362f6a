//! `presence-hubctl`: operators' daily tasks against a running hub, through
//! its REST API (README "Operator CLI"). Every command prints a readable
//! summary, or the API's JSON with `--json`.
//!
//! Exit codes: 0 done; 1 the hub refused (its error and field are printed);
//! 2 wrong usage; 3 the hub cannot be reached; 4 an unexpected answer.

mod client;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use client::{Body, CallError, Client};

#[derive(Parser)]
#[command(version, about = "Operate a presence hub through its REST API")]
struct Args {
    /// The hub's address.
    #[arg(
        long,
        env = "HUB_URL",
        default_value = "http://127.0.0.1:8740",
        global = true
    )]
    url: String,
    /// An API token (admin for changes; console or admin to read).
    #[arg(long, env = "HUB_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A PEM bundle of CAs to trust for https:// besides the system's.
    #[arg(long, env = "HUB_CACERT", global = true)]
    cacert: Option<PathBuf>,
    /// Print the API's JSON instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Health, readiness and every connector's state.
    Status,
    /// Connector instances.
    Connectors {
        #[command(subcommand)]
        action: ConnectorAction,
    },
    /// Users.
    Users {
        #[command(subcommand)]
        action: UserAction,
    },
    /// API tokens.
    Tokens {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// The event log (newest first).
    Events {
        /// Only this user's events.
        #[arg(long)]
        user: Option<String>,
        /// Only this connector instance's events.
        #[arg(long)]
        connector: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Download an online backup of the hub's data (database and, unless
    /// excluded, its secret key) into a file created 0600.
    Backup {
        /// Where to write the archive (a tar file).
        #[arg(long, short)]
        out: PathBuf,
        /// Leave the secret key out: the archive then restores only beside
        /// the hub's `secret.key`, kept apart.
        #[arg(long)]
        without_secret_key: bool,
    },
}

#[derive(Subcommand)]
enum ConnectorAction {
    /// Every instance with its state.
    List,
    /// One instance (configuration without secrets, and status).
    Show { id: String },
    /// Create an instance from a JSON file (`{"id","plugin","config",...}`).
    Create { file: PathBuf },
    /// Start an instance.
    Enable { id: String },
    /// Stop an instance.
    Disable { id: String },
    /// Delete an instance and its data.
    Delete { id: String },
}

#[derive(Subcommand)]
enum UserAction {
    /// Every user.
    List,
    /// Every user as a JSON array that `users import` takes back.
    Export {
        /// Write here instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Import a CSV (`.csv`) or JSON array (`.json`) file; all or nothing.
    Import {
        file: PathBuf,
        /// merge: only the given columns change; replace: each row replaces
        /// its user.
        #[arg(long, value_enum, default_value_t = Mode::Merge)]
        mode: Mode,
        /// With --mode replace: delete users the file does not name.
        #[arg(long)]
        delete_missing: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Merge,
    Replace,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Tokens (names, roles, ids; never their values).
    List,
    /// Make a token and print its value once.
    Create {
        name: String,
        /// `admin` or `console`.
        #[arg(long, default_value = "console")]
        role: String,
    },
    /// Revoke a token; its open feeds end.
    Revoke { id: String },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("presence-hubctl: {e}");
            return ExitCode::from(4);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("presence-hubctl: {e:#}");
            let code = e
                .downcast_ref::<CallError>()
                .map(CallError::exit_code)
                .unwrap_or(2);
            ExitCode::from(code)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ca = match &args.cacert {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("--cacert {}: {e}", p.display()))?)
        }
        None => None,
    };
    let hub = Client::new(&args.url, args.token.clone(), ca.as_deref())?;
    let out = Output { json: args.json };
    match args.command {
        Command::Status => {
            let health = hub.call(Method::GET, "/healthz", Body::None).await?;
            // 503 is an answer here, not a failure: it says what is not ready.
            let ready = match hub.call(Method::GET, "/readyz", Body::None).await {
                Ok(v) => v,
                Err(CallError::Api { body, .. }) => body,
                Err(e) => return Err(e.into()),
            };
            let connectors = hub
                .call(Method::GET, "/api/v1/connectors", Body::None)
                .await?;
            out.show(
                &json!({ "health": health, "ready": ready, "connectors": connectors["connectors"] }),
                render::status,
            );
        }
        Command::Connectors { action } => connectors(&hub, &out, action).await?,
        Command::Users { action } => users(&hub, &out, action).await?,
        Command::Tokens { action } => match action {
            TokenAction::List => {
                let v = hub.call(Method::GET, "/api/v1/tokens", Body::None).await?;
                out.show(&v, render::tokens);
            }
            TokenAction::Create { name, role } => {
                let v = hub
                    .call(
                        Method::POST,
                        "/api/v1/tokens",
                        Body::Json(json!({ "name": name, "role": role })),
                    )
                    .await?;
                out.show(&v, render::new_token);
            }
            TokenAction::Revoke { id } => {
                hub.call(
                    Method::DELETE,
                    &format!("/api/v1/tokens/{}", seg(&id)),
                    Body::None,
                )
                .await?;
                out.done(&format!("token {id} revoked"));
            }
        },
        Command::Events {
            user,
            connector,
            limit,
        } => {
            let mut q = vec![format!("limit={limit}")];
            if let Some(u) = user {
                q.push(format!("user={}", seg(&u)));
            }
            if let Some(c) = connector {
                q.push(format!("connector={}", seg(&c)));
            }
            let v = hub
                .call(
                    Method::GET,
                    &format!("/api/v1/events?{}", q.join("&")),
                    Body::None,
                )
                .await?;
            out.show(&v, render::events);
        }
        Command::Backup {
            out: file,
            without_secret_key,
        } => {
            let path = if without_secret_key {
                "/api/v1/backup?secret_key=exclude"
            } else {
                "/api/v1/backup"
            };
            let bytes = hub.call_bytes(Method::POST, path).await?;
            write_private(&file, &bytes)?;
            out.done(&format!(
                "backup written to {} ({} bytes){}",
                file.display(),
                bytes.len(),
                if without_secret_key {
                    "; it does not hold the secret key: keep the hub's secret.key to restore it"
                } else {
                    "; it holds the secret key: store it as you would a password"
                }
            ));
        }
    }
    Ok(())
}

async fn connectors(hub: &Client, out: &Output, action: ConnectorAction) -> anyhow::Result<()> {
    match action {
        ConnectorAction::List => {
            let v = hub
                .call(Method::GET, "/api/v1/connectors", Body::None)
                .await?;
            out.show(&v["connectors"], render::connectors);
        }
        ConnectorAction::Show { id } => {
            let v = hub
                .call(
                    Method::GET,
                    &format!("/api/v1/connectors/{}", seg(&id)),
                    Body::None,
                )
                .await?;
            out.show(&v, render::pretty);
        }
        ConnectorAction::Create { file } => {
            let text =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let body: Value = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", file.display()))?;
            let v = hub
                .call(Method::POST, "/api/v1/connectors", Body::Json(body))
                .await?;
            out.show(&v, |v| {
                format!("created connector {}", v["id"].as_str().unwrap_or("?"))
            });
        }
        ConnectorAction::Enable { id } => {
            hub.call(
                Method::POST,
                &format!("/api/v1/connectors/{}/enable", seg(&id)),
                Body::None,
            )
            .await?;
            out.done(&format!("connector {id} enabled"));
        }
        ConnectorAction::Disable { id } => {
            hub.call(
                Method::POST,
                &format!("/api/v1/connectors/{}/disable", seg(&id)),
                Body::None,
            )
            .await?;
            out.done(&format!("connector {id} disabled"));
        }
        ConnectorAction::Delete { id } => {
            hub.call(
                Method::DELETE,
                &format!("/api/v1/connectors/{}", seg(&id)),
                Body::None,
            )
            .await?;
            out.done(&format!("connector {id} deleted"));
        }
    }
    Ok(())
}

async fn users(hub: &Client, out: &Output, action: UserAction) -> anyhow::Result<()> {
    match action {
        UserAction::List => {
            let all = all_users(hub).await?;
            out.show(&Value::Array(all), render::users);
        }
        UserAction::Export { out: file } => {
            let all = all_users(hub).await?;
            let text = serde_json::to_string_pretty(&all)? + "\n";
            match file {
                Some(f) => {
                    std::fs::write(&f, text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                    eprintln!("{} users written to {}", all.len(), f.display());
                }
                None => print!("{text}"),
            }
        }
        UserAction::Import {
            file,
            mode,
            delete_missing,
        } => {
            let ctype = match file.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("csv") => "text/csv",
                Some(e) if e.eq_ignore_ascii_case("json") => "application/json",
                _ => anyhow::bail!(
                    "{}: name the file .csv (a header line, then one user a line) or .json \
                     (an array of users)",
                    file.display()
                ),
            };
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mode = match mode {
                Mode::Merge => "merge",
                Mode::Replace => "replace",
            };
            let path = format!("/api/v1/users/import?mode={mode}&delete_missing={delete_missing}");
            match hub.call(Method::POST, &path, Body::Raw(ctype, bytes)).await {
                Ok(v) => out.show(&v, render::import),
                // A rejected import answers 422 with the whole report: show
                // every rejected row, then fail.
                Err(CallError::Api {
                    body,
                    status,
                    error,
                    field,
                }) if body.get("rejected").is_some() => {
                    out.show(&body, render::import);
                    return Err(CallError::Api {
                        status,
                        error,
                        field,
                        body: Value::Null,
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Every user, page by page (1000 a page, the API's maximum).
async fn all_users(hub: &Client) -> Result<Vec<Value>, CallError> {
    let mut all = Vec::new();
    for page in 1.. {
        let v = hub
            .call(
                Method::GET,
                &format!("/api/v1/users?page={page}&per_page=1000"),
                Body::None,
            )
            .await?;
        let users = v["users"].as_array().cloned().unwrap_or_default();
        let total = v["total"].as_u64().unwrap_or(0) as usize;
        let last = users.is_empty();
        all.extend(users);
        if last || all.len() >= total {
            break;
        }
    }
    Ok(all)
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Create `path` readable by its owner only, then write `bytes`.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Where results go: a summary, or the JSON.
struct Output {
    json: bool,
}

impl Output {
    fn show(&self, v: &Value, summary: impl Fn(&Value) -> String) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", summary(v));
        }
    }

    fn done(&self, what: &str) {
        if self.json {
            println!("{}", json!({ "done": what }));
        } else {
            println!("{what}");
        }
    }
}

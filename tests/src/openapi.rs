//! Holds the hub to its own API description: every exchange made through
//! a [`crate::Hub`] whose check is on ([`crate::Hub::check_api`]) is
//! validated against the document the hub serves at
//! `/api/v1/openapi.json`, by openapi-core in a Python sidecar
//! (`tests/openapi/check.py`; `bash .ci/install-test-deps.sh` installs it
//! into `target/openapi-venv`).
//!
//! The request is validated too when the hub accepted it (a 2xx answer):
//! a request the hub takes must be one the description allows. Requests a
//! test sends malformed on purpose are refused by the hub, and then only
//! the refusal's shape is checked.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use base64::Engine as _;
use serde_json::{Value, json};

const FIX: &str = "run `bash .ci/install-test-deps.sh` (it installs openapi-core==0.23.1 into target/openapi-venv), or point OPENAPI_PYTHON at a python that has it";

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("OPENAPI_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = crate::root().join("target/openapi-venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// One exchange, as the checker takes it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub status: u16,
    pub response_content_type: Option<String>,
    pub response_body: Vec<u8>,
}

/// The checker's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub ok: bool,
    pub operation: Option<String>,
    pub errors: Vec<String>,
}

/// A checker loaded with one description.
pub struct Checker {
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    child: Mutex<Child>,
    /// Every exchange checked, as `METHOD path status`, for coverage.
    pub seen: Mutex<Vec<(String, String, u16)>>,
}

impl Checker {
    /// Start a checker on the description in `spec` (JSON or YAML).
    pub fn start(spec: &Path) -> Checker {
        let py = python();
        let script = crate::root().join("tests/openapi/check.py");
        let mut child = Command::new(&py)
            .arg("-u")
            .arg(&script)
            .arg(spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} for the OpenAPI check: {e}; {FIX}",
                    py.display()
                )
            });
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap_or_default();
        let hello: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if hello["ready"] != json!(true) {
            let _ = child.kill();
            panic!(
                "the OpenAPI check of {} did not start: {}; {FIX}",
                spec.display(),
                hello["error"].as_str().unwrap_or(line.trim())
            );
        }
        Checker {
            io: Mutex::new((stdin, stdout)),
            child: Mutex::new(child),
            seen: Mutex::new(Vec::new()),
        }
    }

    fn ask(&self, line: Value) -> Verdict {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("the OpenAPI check died: {e}; {FIX}"));
        let mut out = String::new();
        stdout.read_line(&mut out).unwrap_or_default();
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|_| panic!("the OpenAPI check died (answered {out:?}); {FIX}"));
        Verdict {
            ok: v["ok"] == json!(true),
            operation: v["operation"].as_str().map(str::to_string),
            errors: v["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Check one exchange; the request too when the hub accepted it.
    pub fn check(&self, x: &Exchange) -> Verdict {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let headers: serde_json::Map<String, Value> = x
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let v = self.ask(json!({
            "method": x.method,
            "path": x.path,
            "query": x.query,
            "headers": headers,
            "content_type": x.content_type,
            "body_b64": b64(&x.body),
            "check_request": (200..300).contains(&x.status),
            "status": x.status,
            "response_content_type": x.response_content_type,
            "response_body_b64": b64(&x.response_body),
        }));
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).push((
            x.method.to_uppercase(),
            v.operation.clone().unwrap_or_else(|| x.path.clone()),
            x.status,
        ));
        v
    }

    /// Check one message (e.g. a feed message) against the schema
    /// `components/schemas/{schema}`.
    pub fn check_message(&self, schema: &str, body: &[u8]) -> Verdict {
        self.ask(json!({
            "schema": schema,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(body),
        }))
    }

    /// Panic, naming the exchange and every mismatch, unless it conforms.
    pub fn assert_conforms(&self, x: &Exchange) {
        let v = self.check(x);
        if !v.ok {
            panic!(
                "{} {}{}{} answered {} not as the hub's OpenAPI description says:\n  {}\nrequest body: {}\nanswer: {}",
                x.method,
                x.path,
                if x.query.is_empty() { "" } else { "?" },
                x.query,
                x.status,
                v.errors.join("\n  "),
                excerpt(&x.body),
                excerpt(&x.response_body),
            );
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 1500 {
        format!("{}…", &s[..s.floor_char_boundary(1500)])
    } else {
        s.into_owned()
    }
}

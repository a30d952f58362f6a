//! Readable summaries of the API's answers: aligned columns, the API's own
//! words for states (`up-and-running`, `connection-error`...).

use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell.
fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(head.iter().map(|h| h.to_uppercase()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub fn connectors(v: &Value) -> String {
    let rows = v
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let st = &c["status"];
            vec![
                s(&c["id"]),
                s(&c["plugin"]),
                if c["enabled"].as_bool() == Some(true) {
                    "yes".into()
                } else {
                    "no".into()
                },
                s(&st["run_state"]),
                s(&st["status"]),
                st["status_detail"]
                    .as_str()
                    .or(st["last_error"]["message"].as_str())
                    .or(c["problem"].as_str())
                    .unwrap_or("")
                    .to_string(),
            ]
        })
        .collect();
    table(
        &["id", "plugin", "enabled", "run state", "status", "detail"],
        rows,
    )
}

pub fn status(v: &Value) -> String {
    let ready = &v["ready"];
    let mut out = format!(
        "health: {}\nready: {}{}",
        s(&v["health"]["status"]),
        if ready["ready"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        },
        if ready["degraded"].as_bool() == Some(true) {
            " (degraded: some connectors are not up)"
        } else {
            ""
        }
    );
    let list = |key: &str| {
        ready[key]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .to_vec()
    };
    for p in list("problems") {
        out.push_str(&format!("\n  problem: {}", s(&p)));
    }
    for n in list("not_ready") {
        out.push_str(&format!(
            "\n  required {} not up: {}",
            s(&n["id"]),
            s(&n["reason"])
        ));
    }
    out.push_str("\n\n");
    out.push_str(&connectors(&v["connectors"]));
    out
}

pub fn users(v: &Value) -> String {
    let list = v.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows = list
        .iter()
        .map(|u| {
            vec![
                s(&u["username"]),
                s(&u["display_name"]),
                s(&u["extension"]),
                s(&u["email"]),
            ]
        })
        .collect();
    format!(
        "{}\n{} users",
        table(&["username", "display name", "extension", "email"], rows),
        list.len()
    )
}

pub fn import(v: &Value) -> String {
    let mut out = format!(
        "mode {}: {} created, {} updated, {} unchanged, {} rejected{}",
        s(&v["mode"]),
        v["created"].as_u64().unwrap_or(0),
        v["updated"].as_u64().unwrap_or(0),
        v["unchanged"].as_u64().unwrap_or(0),
        v["rejected"].as_array().map_or(0, Vec::len),
        match v["deleted"].as_array().map_or(0, Vec::len) {
            0 => String::new(),
            n => format!(", {n} deleted"),
        }
    );
    if v["applied"].as_bool() == Some(false) {
        out.push_str("; nothing was imported");
    }
    for r in v["rejected"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "\n  row {}{}: {} {}",
            s(&r["row"]),
            r["line"]
                .as_u64()
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default(),
            r["field"].as_str().unwrap_or(""),
            r["error"]
                .as_str()
                .or(r["reason"].as_str())
                .unwrap_or("rejected"),
        ));
    }
    out
}

pub fn tokens(v: &Value) -> String {
    let list = v
        .get("tokens")
        .unwrap_or(v)
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let rows = list
        .iter()
        .map(|t| vec![s(&t["id"]), s(&t["name"]), s(&t["role"])])
        .collect();
    table(&["id", "name", "role"], rows)
}

pub fn new_token(v: &Value) -> String {
    format!(
        "token {} ({}, {}): {}\nshown once; store it now",
        s(&v["id"]),
        s(&v["name"]),
        s(&v["role"]),
        s(&v["token"])
    )
}

pub fn events(v: &Value) -> String {
    let list = v
        .get("events")
        .unwrap_or(v)
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .map(|e| {
            let who = e["username"]
                .as_str()
                .or(e["instance"].as_str())
                .unwrap_or("");
            format!(
                "{}  {:<8} {}  {}",
                s(&e["at_ms"]),
                s(&e["kind"]),
                who,
                e["detail"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| s(&e["detail"]))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

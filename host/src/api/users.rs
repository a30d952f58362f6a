//! `/api/v1/users`: CRUD, search and paging, bulk import (CSV or JSON),
//! notes and force-subscribe.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiQuery, parse_json};
use super::{ApiError, AppState};
use crate::engine::users::{ImportMode, ImportRow, User};
use crate::presence::{Note, PresenceError};

impl From<PresenceError> for ApiError {
    fn from(e: PresenceError) -> Self {
        let msg = e.to_string();
        match e {
            PresenceError::Invalid(u) => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, u.field, u.message)
            }
            PresenceError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, msg),
            PresenceError::Exists(_) => ApiError::field(StatusCode::CONFLICT, "username", msg),
            PresenceError::Clash(c) => ApiError::field(StatusCode::CONFLICT, c.field, msg),
            PresenceError::Store(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg),
            PresenceError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg),
            PresenceError::Rejected(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, msg),
        }
    }
}

/// The highest page number a list accepts.
pub const MAX_PAGE: usize = 1_000_000;

/// Paging and search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Matches username, display name, email, extension, department.
    pub q: Option<String>,
    pub page: Option<usize>,
    pub per_page: Option<usize>,
}

impl Page {
    /// Validated (page, per_page).
    pub fn bounds(&self) -> Result<(usize, usize), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(50);
        // Bounded so that (page - 1) * per_page cannot overflow.
        if page == 0 || page > MAX_PAGE {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "page",
                format!("1-{MAX_PAGE} (pages start at 1)"),
            ));
        }
        if per_page == 0 || per_page > 1000 {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "per_page",
                "1-1000",
            ));
        }
        Ok((page, per_page))
    }
}

fn matches(u: &User, q: &str) -> bool {
    let q = q.to_lowercase();
    [
        Some(u.username.as_str()),
        Some(u.display_name.as_str()),
        u.email.as_deref(),
        u.extension.as_deref(),
        u.department.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|f| f.to_lowercase().contains(&q))
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    summary = "Search and page users",
    params(Page),
    responses(
        (status = 200, description = "One page", body = super::openapi::UserPage),
        (status = 400, description = "A paging or search parameter is out of range", body = super::openapi::ErrorBody)
    )
)]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<impl IntoResponse, ApiError> {
    let (page, per_page) = p.bounds()?;
    let all: Vec<Arc<User>> = s
        .presence
        .users()
        .await?
        .into_iter()
        .filter(|u| p.q.as_deref().is_none_or(|q| matches(u, q)))
        .collect();
    let total = all.len();
    let users: Vec<Arc<User>> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Ok(Json(
        json!({ "total": total, "page": page, "per_page": per_page, "users": users }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    summary = "Create a user",
    request_body = crate::engine::users::User,
    responses(
        (status = 201, description = "Created", body = crate::engine::users::User),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 409, description = "The username, or a unique attribute, is taken", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn create(State(s): State<AppState>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let u: User = parse_json(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(s.presence.put_user(u, true).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{username}",
    tag = "users",
    summary = "One user",
    params(("username" = String, Path, description = "Username (canonical form)")),
    responses(
        (status = 200, description = "The user", body = crate::engine::users::User),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody)
    )
)]
pub async fn get_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.presence
        .user(&name)
        .await?
        .map(Json)
        .ok_or_else(|| PresenceError::NotFound(name).into())
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{username}",
    tag = "users",
    summary = "Replace a user",
    params(("username" = String, Path, description = "Username (canonical form)")),
    request_body = crate::engine::users::User,
    responses(
        (status = 200, description = "Replaced", body = crate::engine::users::User),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody),
        (status = 409, description = "A unique attribute is taken", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn replace(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let u: User = parse_json(&body)?;
    if u.username != name {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "username",
            "must match the URL; delete and create to rename",
        ));
    }
    Ok(Json(s.presence.put_user(u, false).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{username}",
    tag = "users",
    summary = "Delete a user and their notes",
    params(("username" = String, Path, description = "Username (canonical form)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody)
    )
)]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.presence.delete_user(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

const CSV_COLUMNS: &[&str] = &[
    "username",
    "display_name",
    "department",
    "email",
    "extension",
    "voicemail_number",
    "sip_uri_rich",
    "sip_uri_telephony",
    "teams_upn",
    "lync_uri",
    "shared",
];

/// The field separator of a CSV file: whichever of `,`, `;` and tab its
/// header line has most of (spreadsheets in many locales export `;`),
/// `,` when it has none.
fn csv_delimiter(header_line: &[u8]) -> u8 {
    let count = |d: u8| header_line.iter().filter(|b| **b == d).count();
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| (count(*d), *d == b','))
        .filter(|d| count(*d) > 0)
        .unwrap_or(b',')
}

/// A CSV header as the column it names: trimmed, lower case, spaces as
/// `_` (`Display Name` is `display_name`).
fn csv_column(h: &str) -> String {
    h.trim().to_lowercase().replace([' ', '-'], "_")
}

fn parse_csv(body: &[u8]) -> Result<Vec<ImportRow>, ApiError> {
    // A spreadsheet's UTF-8 export often starts with a byte-order mark.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first_line = body.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = csv_delimiter(first_line);
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(body);
    let headers: Vec<String> = rd
        .headers()
        .map_err(|e| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "body",
                format!("CSV header line: {e}; the file must be UTF-8 text with a header line of column names"),
            )
        })?
        .iter()
        .map(csv_column)
        .collect();
    for h in &headers {
        if !CSV_COLUMNS.contains(&h.as_str()) {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                h.clone(),
                format!(
                    "unknown CSV column {h:?}; the columns are: {} (separated by , ; or tab, \
                     as the header line shows; username is required)",
                    CSV_COLUMNS.join(", ")
                ),
            ));
        }
    }
    if !headers.iter().any(|h| h == "username") {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "username",
            format!(
                "the CSV needs a username column; its header line names the columns, e.g. \
                 username,display_name,extension (found: {})",
                headers.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let row = i + 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line());
                out.push(ImportRow {
                    row,
                    line,
                    columns: headers.clone(),
                    user: Err((
                        "row".into(),
                        format!("{e}; every line has the header's columns"),
                    )),
                });
                continue;
            }
        };
        let line = rec.position().map(|p| p.line());
        let mut obj = serde_json::Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if h == "shared" {
                let list: Vec<serde_json::Value> = v
                    .split([' ', '|', ';', ','])
                    .filter(|f| !f.is_empty())
                    .map(|f| serde_json::Value::String(f.to_string()))
                    .collect();
                obj.insert(h.clone(), serde_json::Value::Array(list));
            } else if !v.is_empty() {
                obj.insert(h.clone(), serde_json::Value::String(v.to_string()));
            }
        }
        out.push(ImportRow {
            row,
            line,
            columns: headers.clone(),
            user: serde_path_to_error::deserialize::<_, User>(serde_json::Value::Object(obj))
                .map_err(|e| (e.path().to_string(), e.inner().to_string())),
        });
    }
    Ok(out)
}

/// How an import treats existing users.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `merge` (default): only the given columns change; `replace`: each
    /// row replaces its user.
    #[serde(default)]
    pub mode: ImportMode,
    /// With `mode=replace`: delete the users the file does not name.
    #[serde(default)]
    pub delete_missing: bool,
}

/// Bulk import: `text/csv` with a header line (`,`, `;` or tab
/// separated, a UTF-8 byte-order mark allowed), or a JSON array of users.
/// `?mode=merge` (default) changes only the columns (JSON: the fields)
/// given; `?mode=replace` makes each row its user, and with
/// `&delete_missing=true` deletes users the file does not name. All or
/// nothing: 200 with the report when every row was taken, 422 with the
/// same report (`applied: false`, each rejected row's line, field and
/// reason) when any was not.
#[utoipa::path(
    post,
    path = "/api/v1/users/import",
    tag = "users",
    summary = "Bulk import (CSV with a header line, or a JSON array)",
    params(ImportQuery),
    request_body(content((String = "text/csv"), (Vec<crate::engine::users::User> = "application/json"))),
    responses(
        (status = 200, description = "Every row taken", body = super::openapi::ImportResult),
        (status = 400, description = "The CSV header or JSON is unreadable", body = super::openapi::ErrorBody),
        (status = 415, description = "Neither text/csv nor application/json", body = super::openapi::ErrorBody),
        (status = 422, description = "Rows rejected; nothing imported", body = super::openapi::ImportResult)
    )
)]
pub async fn import(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if q.delete_missing && q.mode != ImportMode::Replace {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "delete_missing",
            "deleting the users a file does not name needs mode=replace",
        ));
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = if ctype.starts_with("text/csv") {
        parse_csv(&body)?
    } else if ctype.starts_with("application/json") {
        let items: Vec<serde_json::Value> = parse_json(&body)?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let columns = v
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                ImportRow {
                    row: i + 1,
                    line: None,
                    columns,
                    user: serde_path_to_error::deserialize::<_, User>(v)
                        .map_err(|e| (e.path().to_string(), e.inner().to_string())),
                }
            })
            .collect()
    } else {
        return Err(ApiError::field(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
            "send text/csv or application/json",
        ));
    };
    let report = s
        .presence
        .import_users(rows, q.mode, q.delete_missing)
        .await?;
    let status = if report.applied {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut body = serde_json::to_value(&report)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !report.applied {
        body["error"] = json!(format!(
            "{} rows rejected; nothing was imported (each rejected row says why)",
            report.rejected.len()
        ));
    }
    Ok((status, Json(body)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNote {
    text: String,
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{username}/notes",
    tag = "users",
    summary = "A user's notes in force",
    params(("username" = String, Path, description = "Username (canonical form)")),
    responses(
        (status = 200, description = "Notes", body = super::openapi::NoteList),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody)
    )
)]
pub async fn notes(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let d = s.presence.detail(&name).await?;
    Ok(Json(json!({ "notes": d.presence.notes })))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/notes",
    tag = "users",
    summary = "Add a note",
    params(("username" = String, Path, description = "Username (canonical form)")),
    request_body = NewNote,
    responses(
        (status = 201, description = "Added", body = crate::presence::Note),
        (status = 400, description = "The body is not valid JSON or not of this shape; `field` names the JSON path", body = super::openapi::ErrorBody),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody),
        (status = 422, description = "A value is refused; `field` names it and the error says what is allowed", body = super::openapi::ErrorBody)
    )
)]
pub async fn add_note(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let n: NewNote = parse_json(&body)?;
    if let Some(e) = n.expires_at_ms
        && e <= crate::store::now_ms()
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_at_ms",
            "must be in the future",
        ));
    }
    let note = s
        .presence
        .add_note(
            &name,
            Note {
                id: 0,
                text: n.text,
                author: caller.name,
                at_ms: 0,
                expires_at_ms: n.expires_at_ms,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(note)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{username}/notes/{id}",
    tag = "users",
    summary = "Delete a note",
    params(("username" = String, Path, description = "Username (canonical form)"), ("id" = String, Path, description = "Note id (a whole number)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a number", body = super::openapi::ErrorBody),
        (status = 404, description = "No such user or note", body = super::openapi::ErrorBody)
    )
)]
pub async fn delete_note(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::field(StatusCode::BAD_REQUEST, "id", "a note id is a number"))?;
    s.presence.delete_note(&name, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/subscribe",
    tag = "users",
    summary = "Force-subscribe a user's endpoints for a minute",
    params(("username" = String, Path, description = "Username (canonical form)")),
    responses(
        (status = 200, description = "Until when", body = super::openapi::Subscribed),
        (status = 404, description = "No such user", body = super::openapi::ErrorBody)
    )
)]
pub async fn subscribe(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let until = s.presence.force_subscribe(&name).await?;
    Ok(Json(json!({ "username": name, "until_ms": until })))
}

/// Fuzz target `csv` (`tools/fuzzkit`): the user import CSV, from the seeds
/// in `fuzz/corpus/csv/`, mutated, through the parser and each row's
/// validation; no panic allowed.
/// `FUZZ_SECONDS=<n> cargo test -p presence-hub fuzz_csv` runs longer.
#[cfg(test)]
mod fuzz {
    use super::*;

    const DICTIONARY: &[&[u8]] = &[
        b",",
        b"\n",
        b"\r\n",
        b"\r",
        b"\"",
        b"\"\"",
        b" ",
        b"\t",
        b"\xEF\xBB\xBF",
        b"\xFF",
        b"\0",
        b"username",
        b"display_name",
        b"department",
        b"email",
        b"extension",
        b"voicemail_number",
        b"sip_uri_rich",
        b"sip_uri_telephony",
        b"teams_upn",
        b"lync_uri",
        b"sip:",
        b"@",
        b"alice",
    ];

    fn exercise(input: &[u8]) {
        match parse_csv(input) {
            Ok(rows) => {
                for row in rows {
                    if let Ok(user) = row.user {
                        let _ = user.validate();
                    }
                }
            }
            Err(e) => {
                let _ = format!("{e:?}");
            }
        }
    }

    #[test]
    fn fuzz_csv() {
        let corpus = fuzzkit::load_corpus(env!("CARGO_MANIFEST_DIR"), "csv");
        fuzzkit::check(
            "csv",
            &corpus,
            DICTIONARY,
            fuzzkit::Budget::from_env(),
            exercise,
        );
    }
}

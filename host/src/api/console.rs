//! The operators' web console: static assets embedded in the binary, served
//! under `/ui/` (and `/` redirects there). The page talks only to the REST
//! API (`../api/v1/...`, relative, so it works under a reverse proxy's path
//! prefix); it has no back end of its own.
//!
//! Every answer carries the security headers: a Content-Security-Policy
//! without inline scripts or styles, `frame-ancestors 'none'`,
//! `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff`.
//! These routes are outside `/api/v1` and outside `ROUTES` (the OpenAPI
//! description documents the API, not the page).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $ctype:expr) => {
        Asset {
            name: $name,
            content_type: $ctype,
            body: include_str!(concat!("console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything the page loads. Plain ES modules and one stylesheet.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("feed.js", JS),
    asset!("states.js", JS),
    asset!("board.js", JS),
    asset!("connectors.js", JS),
    asset!("plugins.js", JS),
    asset!("users.js", JS),
    asset!("settings.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The policy: scripts, styles, images and fetches from this origin only;
/// nothing inline, no frames, no plugins, forms never submitted by the
/// browser (the scripts send them through the API).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// The console's routes, merged into the hub's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(to_ui))
        .route("/ui", get(to_ui_slash))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

fn security_headers(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    );
}

/// A relative redirect, so that a proxy's path prefix is kept.
fn redirect(to: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    security_headers(r.headers_mut());
    r
}

async fn to_ui() -> Response {
    redirect("ui/")
}

/// `/ui` → `/ui/`: relative to `/ui`, `ui/` is `/ui/`.
async fn to_ui_slash() -> Response {
    redirect("ui/")
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

/// Strong validators for the embedded files, computed once.
fn etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body.as_bytes());
                format!("\"{}\"", hex::encode(&d[..12]))
            })
            .collect()
    })
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        let mut r = (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such file in the console",
        )
            .into_response();
        security_headers(r.headers_mut());
        return r;
    };
    let asset = &ASSETS[i];
    let etag = etags()[i].as_str();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: a new hub binary brings new files.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        // Each `./x.js` named in an import or a script tag must be embedded.
        for a in ASSETS {
            for part in a.body.split(['"', '\'']) {
                if let Some(rest) = part.strip_prefix("./")
                    && (rest.ends_with(".js") || rest.ends_with(".css") || rest.ends_with(".svg"))
                {
                    assert!(
                        ASSETS.iter().any(|b| b.name == rest),
                        "{} refers to {rest}, which is not embedded",
                        a.name
                    );
                }
            }
        }
    }

    #[test]
    fn no_inline_script_or_style() {
        let html = ASSETS[0].body;
        assert!(!html.contains("<script>"), "inline script in index.html");
        assert!(!html.contains("style="), "inline style in index.html");
        assert!(!html.contains("<style"), "inline style in index.html");
        assert!(!html.contains("href=\"/"), "absolute URL in index.html");
        assert!(!html.contains("src=\"/"), "absolute URL in index.html");
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            assert!(
                !a.body.contains("\"/api/")
                    && !a.body.contains("'/api/")
                    && !a.body.contains("`/api/"),
                "{} uses an absolute API path; use relative ones (reverse proxy prefix)",
                a.name
            );
            assert!(
                !a.body.contains("access_token"),
                "{} puts a token in a URL",
                a.name
            );
            assert!(
                !a.body.contains("localStorage"),
                "{}: the token is kept in sessionStorage only",
                a.name
            );
        }
    }
}

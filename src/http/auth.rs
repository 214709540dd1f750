//! Who may ask: the bearer token (header, or the HttpOnly cookie a browser gets from
//! `/?token=`), and, without a token, the Host and Origin guard that keeps other web pages and
//! DNS-rebinding hosts away from a service on loopback.
//!
//! Owns: the two middleware layers and their refusals. Must not touch: what a route does.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::ServiceState;

/// The cookie a browser gets after opening `/?token=...`, so the dashboard's own requests
/// (including the `EventSource` stream, which cannot send headers) carry the token.
const TOKEN_COOKIE: &str = "gatewatch_token";

/// With a token configured, every route but `/healthz` needs `Authorization: Bearer <token>`
/// or the cookie set by opening `/?token=<token>`.
pub(super) async fn require_token(
    State(state): State<Arc<ServiceState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let (scheme, token) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .next();
    if bearer.or(cookie).is_some_and(|t| same_secret(t, expected)) {
        return next.run(req).await;
    }
    if req.uri().path() == "/" {
        let query = req.uri().query().unwrap_or("");
        let from_query = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .next();
        if from_query.is_some_and(|t| same_secret(t, expected)) {
            // Move the token out of the address bar (and history) into an HttpOnly cookie;
            // keep the rest of the query (`/?token=...&sql=...` still opens with that query).
            let rest: Vec<&str> = query
                .split('&')
                .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
                .collect();
            let location = if rest.is_empty() {
                "/".to_string()
            } else {
                format!("/?{}", rest.join("&"))
            };
            let cookie = format!("{TOKEN_COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict");
            return (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
            )
                .into_response();
        }
    }
    let body = serde_json::json!({
        "error": "this gatewatch requires a token: send Authorization: Bearer <token> (the service's http.token or GATEWATCH_HTTP_TOKEN), use gatewatch query --token, or open /?token=<token> in a browser"
    })
    .to_string()
        + "\n";
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer realm=\"gatewatch\""),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body,
    )
        .into_response()
}

/// Without a token, refuses what a hostile web page in an operator's browser could send:
/// requests addressed to a host name that is not this service's (DNS rebinding: `Host:
/// evil.example` resolving to 127.0.0.1), and cross-origin requests that read state or run
/// queries (`Origin` of another site, or `Sec-Fetch-Site: cross-site`). Opening the dashboard
/// from a link (a navigation to `/` or its assets) and `/healthz` stay allowed. With a token,
/// the token is the guard (its cookie is `SameSite=Strict`, so no other site's request carries
/// it).
pub(super) async fn same_origin_only(
    State(state): State<Arc<ServiceState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.token.is_some() || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host {
        if !allowed_host(host, state.bind) {
            return forbidden(format!(
                "this gatewatch answers only requests addressed to it by a loopback name or its own address, not {host:?} (a guard against DNS rebinding); use http://127.0.0.1:{}/, or set http.token to serve other names",
                state.bind.port()
            ));
        }
    }
    let navigation = req.method() == axum::http::Method::GET
        && (req.uri().path() == "/" || req.uri().path().starts_with("/assets/"));
    if !navigation {
        let cross_site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
        let foreign_origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|origin| {
                let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
                host.is_none_or(|h| !origin_host.eq_ignore_ascii_case(h))
            });
        if cross_site || foreign_origin {
            return forbidden(
                "cross-origin requests are refused (another site's page may not read gatewatch or run its queries); open the dashboard from this service, or set http.token".into(),
            );
        }
    }
    next.run(req).await
}

/// Whether a `Host` header names this service: a loopback name or address, the bound address,
/// or (bound to every interface) any address literal, which no DNS rebinding can produce.
fn allowed_host(host: &str, bind: std::net::SocketAddr) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    let name = name.trim_end_matches('.');
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == bind.ip() || bind.ip().is_unspecified(),
        Err(_) => false,
    }
}

fn forbidden(msg: String) -> Response {
    let body = serde_json::json!({ "error": msg }).to_string() + "\n";
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Compares without stopping at the first differing byte (no timing hint of the prefix).
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

//! A minimal HTTP/1.1 client for `gatewatch query` and alert webhooks: one request per
//! connection, plain `http://`.
//!
//! Owns: URL parsing, the request, reading the response (Content-Length, chunked or to EOF).
//! A general client (reqwest) would add a TLS stack and a second HTTP implementation to the
//! build for one POST to a service that listens on loopback by default.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A request that did not get an HTTP response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port[/prefix]`.
    #[error(
        "{0:?} is not a gatewatch URL; write it as http://HOST:PORT, e.g. http://127.0.0.1:8080"
    )]
    BadUrl(String),
    /// Connecting or talking failed.
    #[error("cannot reach gatewatch at {url}: {cause}; is `gatewatch run` running there? Point --url at it")]
    Io {
        /// The URL.
        url: String,
        /// What failed.
        cause: std::io::Error,
    },
    /// The bytes back were not HTTP.
    #[error("{url} did not answer with HTTP; is it a gatewatch service?")]
    NotHttp {
        /// The URL.
        url: String,
    },
}

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// A parsed `http://host:port/prefix` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    host: String,
    port: u16,
    prefix: String,
    original: String,
}

impl Url {
    /// The path part (`/prefix`, or empty).
    pub fn path(&self) -> &str {
        &self.prefix
    }

    /// Parses `http://host[:port][/prefix]` (port 80 by default).
    pub fn parse(url: &str) -> Result<Url, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Url {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            prefix: prefix.to_string(),
            original: url.to_string(),
        })
    }
}

/// Sends one request and reads the whole response (for `gatewatch query`: patient reads).
pub fn request(
    url: &Url,
    method: &str,
    path: &str,
    accept: &str,
    body: &[u8],
    bearer: Option<&str>,
) -> Result<HttpResponse, ClientError> {
    request_with(
        url,
        method,
        path,
        accept,
        "text/plain; charset=utf-8",
        body,
        Duration::from_secs(600),
        bearer,
    )
}

/// Sends one request with a content type, a timeout for connecting, writing and reading, and
/// optionally `Authorization: Bearer <token>`.
#[allow(clippy::too_many_arguments)]
pub fn request_with(
    url: &Url,
    method: &str,
    path: &str,
    accept: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
    bearer: Option<&str>,
) -> Result<HttpResponse, ClientError> {
    let io = |cause| ClientError::Io {
        url: url.original.clone(),
        cause,
    };
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| {
            io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the host name has no address",
            ))
        })?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(5))).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nAccept: {accept}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\nUser-Agent: gatewatch\r\n\r\n",
        url.prefix,
        url.host,
        url.port,
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    parse_response(&raw).ok_or(ClientError::NotHttp {
        url: url.original.clone(),
    })
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = memchr::memmem::find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    if !status_line.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut content_type, mut chunked, mut length) = (None, false, None);
    for l in lines {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(v.to_string()),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "content-length" => length = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(n) => rest.get(..n)?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Some(HttpResponse {
        status,
        content_type,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = memchr::memmem::find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..nl]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("127.0.0.1", 8080, "")
        );
        let u = Url::parse("http://gw.example/watch/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("gw.example", 80, "/watch")
        );
        assert!(Url::parse("https://x").is_err());
        assert!(Url::parse("http://:80").is_err());
        assert!(Url::parse("http://h:port").is_err());
    }

    #[test]
    fn responses() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ncontent-length: 3\r\n\r\nabcdef",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        assert_eq!(r.content_type.as_deref(), Some("text/csv"));
        let r = parse_response(b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"abcde"[..]));
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_none());
    }
}

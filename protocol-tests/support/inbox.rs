//! The inbox of a gateway under test: its address, and HTTP requests to
//! its pages and JSON API.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use super::gateway::Gateway;

/// The inbox address the gateway printed.
pub fn inbox(gateway: &Gateway) -> String {
    gateway
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("inbox listening on "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the inbox line")
        .to_string()
}

/// One HTTP/1.1 request with an extra header line (or none): the status,
/// the raw head and the body.
pub fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    header: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the inbox");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{header}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}

/// A JSON API request; the status and the body as JSON.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = exchange(addr, method, path, &auth, "application/json", body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

//! Who is calling the MCP endpoint: a bearer token per identity
//! (`[[identity]] mcp_token_hash`), checked on every HTTP request before
//! the MCP layer sees it, and the OAuth 2.1 resource-server answers
//! (RFC 9728 protected-resource metadata, `WWW-Authenticate` on 401) that
//! let MCP clients discover what the endpoint expects.
//!
//! There is no anonymous access: a request without a valid token never
//! reaches a tool.

use crate::identity::{Identities, Identity};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The identity a request proved with its token; tools read it from the
/// request's extensions.
#[derive(Clone, Debug)]
pub struct Agent(pub Arc<Identity>);

/// What the middleware needs.
#[derive(Clone)]
pub struct Gatekeeper {
    pub identities: Arc<Identities>,
    /// The endpoint's public address (`…/mcp`), the resource tokens are for.
    pub resource: String,
    /// Where the protected-resource metadata is served.
    pub metadata_url: String,
}

/// The bearer token of an `Authorization` header, if it is one.
fn bearer(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Lets the request through with its [`Agent`], or answers 401.
pub async fn require_token(
    State(keeper): State<Arc<Gatekeeper>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(header::AUTHORIZATION);
    let presented = header.is_some();
    let identity = header
        .and_then(bearer)
        .and_then(|token| keeper.identities.by_mcp_token(token))
        .filter(|i| i.database_login);
    match identity {
        Some(identity) => {
            request.extensions_mut().insert(Agent(identity));
            next.run(request).await
        }
        None => {
            if presented {
                tracing::warn!("MCP request with an unknown or unusable bearer token refused");
            }
            unauthorized(&keeper, presented)
        }
    }
}

fn unauthorized(keeper: &Gatekeeper, presented: bool) -> Response {
    let challenge = if presented {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"unknown or revoked token\", resource_metadata=\"{}\"",
            keeper.metadata_url
        )
    } else {
        format!("Bearer resource_metadata=\"{}\"", keeper.metadata_url)
    };
    let body = serde_json::json!({
        "error": if presented { "invalid_token" } else { "unauthorized" },
        "error_description": "the MCP endpoint needs an Airlock MCP token: Authorization: Bearer <token> (see `airlock identity token --mcp`)",
    });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 9728 protected-resource metadata. No authorization server is
/// named: tokens are issued by `airlock identity token --mcp`, not by an
/// OAuth flow.
pub async fn metadata(State(keeper): State<Arc<Gatekeeper>>) -> Response {
    axum::Json(serde_json::json!({
        "resource": keeper.resource,
        "resource_name": "Airlock database gateway",
        "bearer_methods_supported": ["header"],
        "authorization_servers": [],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_headers_carry_a_token() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&h("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&h("Basic abc")), None);
        assert_eq!(bearer(&h("Bearer ")), None);
        assert_eq!(bearer(&h("Bearer")), None);
        assert_eq!(bearer(&h("abc")), None);
    }
}

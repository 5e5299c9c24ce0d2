//! Who is calling the MCP endpoint: a bearer token per identity
//! (`[[identity]] mcp_token_hash`), checked on every HTTP request before
//! the MCP layer sees it, and the OAuth 2.1 resource-server answers
//! (RFC 9728 protected-resource metadata, `WWW-Authenticate` on 401) that
//! let MCP clients discover what the endpoint expects.
//!
//! With single sign-on configured (`[inbox.oidc]`), the metadata names
//! that OpenID provider as the authorization server, and access tokens it
//! issues for this endpoint (RFC 9068 JWTs whose audience is the
//! endpoint) are accepted for the identity whose `mcp_oauth_subject` is
//! their `sub`. Airlock's own MCP tokens keep working beside them.
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
    /// The inbox's OpenID provider, whose access tokens are accepted.
    pub sso: Option<Arc<crate::inbox::oidc::Sso>>,
}

impl Gatekeeper {
    /// The identity `token` proves, if any.
    async fn identity(&self, token: &str) -> Option<Arc<Identity>> {
        if let Some(identity) = self.identities.by_mcp_token(token) {
            return Some(identity);
        }
        let sso = self.sso.as_ref()?;
        // Only a JWT can be one of the provider's access tokens.
        if token.split('.').count() != 3 {
            return None;
        }
        match sso.access_token_subject(token, &self.resource).await {
            Ok(subject) => {
                let found = self.identities.by_mcp_oauth_subject(&subject);
                if found.is_none() {
                    tracing::warn!(subject = %subject, "MCP access token for a subject no [[identity]] mcp_oauth_subject names");
                }
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "MCP access token refused");
                None
            }
        }
    }
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
    let token = header.and_then(bearer).map(str::to_string);
    let identity = match token {
        Some(token) => keeper.identity(&token).await,
        None => None,
    }
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
        "error_description": if keeper.sso.is_some() {
            "the MCP endpoint needs an Airlock MCP token (see `airlock identity token --mcp`) or an access token for it from the authorization server in the resource metadata: Authorization: Bearer <token>"
        } else {
            "the MCP endpoint needs an Airlock MCP token: Authorization: Bearer <token> (see `airlock identity token --mcp`)"
        },
    });
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// RFC 9728 protected-resource metadata: the inbox's OpenID provider as
/// the authorization server when there is one; without it, none (tokens
/// come from `airlock identity token --mcp`).
pub async fn metadata(State(keeper): State<Arc<Gatekeeper>>) -> Response {
    let servers: Vec<&str> = keeper.sso.iter().map(|s| s.issuer()).collect();
    axum::Json(serde_json::json!({
        "resource": keeper.resource,
        "resource_name": "Airlock database gateway",
        "bearer_methods_supported": ["header"],
        "authorization_servers": servers,
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

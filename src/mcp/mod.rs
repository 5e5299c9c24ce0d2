//! The MCP front door: an MCP server (Streamable HTTP, or stdio for a
//! local agent) whose tools hand statements to the same [`Gate`] as the
//! wire listeners and results to the same masker.
//!
//! - `auth` proves who calls (per-identity bearer tokens) and answers the
//!   OAuth resource-server discovery requests;
//! - `tools` is the MCP server itself: each tool call is a session of its
//!   own in the audit log (`"protocol":"mcp"`), its statement checked by
//!   the gate, held statements answered at once with their request, and
//!   allowed ones run on Airlock's own upstream connection with row, byte
//!   and time caps (`proxy::pg::capped`).
//!
//! Nothing here can approve a request or change policy, identities or
//! requests: the approval store is only read, and requests only made
//! through [`Gate::hold`].

pub mod auth;
pub mod tools;

use crate::config::McpConfig;
use crate::gate::Gate;
use crate::identity::Identities;
use crate::proxy::pg::upstream::Pool;
use std::sync::Arc;

pub use tools::Tools;

/// What every MCP tool call works with.
pub struct Mcp {
    pub gate: Arc<Gate>,
    pub pool: Arc<Pool>,
    pub identities: Arc<Identities>,
    pub settings: McpConfig,
    /// The PostgreSQL database used when a call names none.
    pub default_database: String,
    /// The MySQL/MariaDB upstream, when the MySQL listener is enabled, and
    /// the database used when a call for it names none.
    pub mysql: Option<crate::proxy::mysql::upstream::UpstreamSettings>,
    pub mysql_default_database: String,
    /// The inbox's OpenID provider, whose access tokens for this endpoint
    /// are accepted (see [`auth`]).
    pub sso: Option<Arc<crate::inbox::oidc::Sso>>,
    /// Databases no agent may use (the shared approval store's).
    pub reserved_databases: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("mcp.listen: cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the MCP endpoint stopped: {0}")]
    Serve(String),
    #[error("AIRLOCK_MCP_TOKEN is not the MCP token of any identity that may use the database")]
    BadToken,
}

/// The public base address of the endpoint (without `/mcp`).
pub fn base_url(settings: &McpConfig, bound: std::net::SocketAddr) -> String {
    settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"))
}

/// Serves the Streamable HTTP endpoint at `/mcp` on `listener` until `stop`.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    mcp: Arc<Mcp>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), McpError> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

    let bound = listener
        .local_addr()
        .map_err(|e| McpError::Serve(e.to_string()))?;
    let base = base_url(&mcp.settings, bound);
    let keeper = Arc::new(auth::Gatekeeper {
        identities: mcp.identities.clone(),
        resource: format!("{base}/mcp"),
        metadata_url: format!("{base}/.well-known/oauth-protected-resource/mcp"),
        sso: mcp.sso.clone(),
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    // Requests must name this endpoint as their host (DNS rebinding): the
    // loopback names, the address it listens on and its public address.
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
        bound.ip().to_string(),
        bound.to_string(),
    ];
    if let Some(host) = mcp
        .settings
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_string())
    {
        hosts.push(host.clone());
        if let Some((name, _port)) = host.rsplit_once(':') {
            hosts.push(name.to_string());
        }
    }
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_cancellation_token(cancel.clone());
    let tools_mcp = mcp.clone();
    let service = StreamableHttpService::new(
        move || Ok(Tools::new(tools_mcp.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let protected = axum::Router::new().nest_service("/mcp", service).layer(
        axum::middleware::from_fn_with_state(keeper.clone(), auth::require_token),
    );
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            axum::routing::get(auth::metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(auth::metadata),
        )
        .with_state(keeper)
        .merge(protected);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
        cancel.cancel();
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| McpError::Serve(e.to_string()))
}

/// Serves MCP on standard input and output for the identity whose MCP
/// token is `token`, until the client closes its end.
pub async fn serve_stdio(mcp: Arc<Mcp>, token: &str) -> Result<(), McpError> {
    use rmcp::ServiceExt;
    let identity = mcp
        .identities
        .by_mcp_token(token)
        .filter(|i| i.database_login)
        .ok_or(McpError::BadToken)?;
    let running = Tools::new(mcp, Some(identity))
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Serve(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Serve(e.to_string()))?;
    Ok(())
}

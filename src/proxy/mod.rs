//! The wire side of Airlock: one sub-module per database protocol, plus what
//! they share (TLS setup, the byte stream type, shutdown).
//!
//! Everything that knows a wire format lives under here; the decisions are
//! taken by [`crate::gate`].

pub mod capped;
pub mod mysql;
pub mod pg;
pub mod tls;

use crate::limits::{Limits, PreAuthSlot};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// A connection that may or may not have been upgraded to TLS.
pub enum Stream {
    /// A connection already given away or shut; reads see EOF, writes fail.
    Closed,
    Plain(TcpStream),
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::ServerTls(_) | Stream::ClientTls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Closed => Poll::Ready(Ok(())),
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ServerTls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ClientTls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Closed => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ServerTls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ClientTls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Closed => Poll::Ready(Ok(())),
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::ServerTls(s) => Pin::new(s).poll_flush(cx),
            Stream::ClientTls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Closed => Poll::Ready(Ok(())),
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ServerTls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ClientTls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// How many sessions a listener runs at once, how connections that have
/// not logged in yet are counted, and how long sessions get to finish
/// when the gateway stops.
#[derive(Clone)]
pub struct SessionLimits {
    /// Logged-in sessions (`server.max_connections`).
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    /// Pre-authentication connections per address and in total, and how
    /// long one may stay before logging in (`[limits]`).
    pub limits: Arc<Limits>,
}

/// A connection's passage from "not logged in" to "a session": it holds a
/// pre-authentication slot until [`Admission::logged_in`], then one of the
/// listener's session slots until the connection ends.
pub struct Admission {
    preauth: Option<PreAuthSlot>,
    sessions: Arc<Semaphore>,
    session: Option<OwnedSemaphorePermit>,
    logged_in: Option<oneshot::Sender<()>>,
}

impl Admission {
    /// The client proved who it is: its pre-authentication slot is freed
    /// and it takes a session slot; `false` when all
    /// `server.max_connections` are taken (the client is to be refused).
    /// The handshake timeout stops applying.
    pub fn logged_in(&mut self) -> bool {
        self.preauth = None;
        if let Some(tx) = self.logged_in.take() {
            let _ = tx.send(());
        }
        match self.sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                self.session = Some(permit);
                true
            }
            Err(_) => false,
        }
    }
}

/// A listener's life, the same for every protocol: accepts until
/// `shutdown` turns true and runs `session` for each connection. A
/// connection is first counted among those not yet logged in (per address
/// and in total, `[limits]`); beyond those, `refuse` answers it in the
/// protocol's own words. One that has not logged in within the handshake
/// timeout is closed. Logged-in sessions are counted apart (at most
/// `limits.max_connections`, see [`Admission::logged_in`]), so a flood of
/// idle sockets never takes a logged-in agent's place. At shutdown,
/// running sessions get the shutdown timeout to finish, then are closed.
pub async fn serve_sessions<S, R>(
    listener: &TcpListener,
    protocol: &'static str,
    limits: SessionLimits,
    shutdown: watch::Receiver<bool>,
    refuse: impl Fn(TcpStream) -> R,
    session: impl Fn(TcpStream, SocketAddr, Admission, watch::Receiver<bool>) -> S,
) where
    S: Future<Output = ()> + Send + 'static,
    R: Future<Output = ()> + Send + 'static,
{
    let sessions_limit = Arc::new(Semaphore::new(limits.max_connections));
    let handshake = limits.limits.config().handshake_timeout;
    let mut sessions = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Some(preauth) = limits.limits.admit(peer.ip()) else {
            tracing::debug!(client = %peer, "connection refused: too many not logged in");
            // Bounded: a client that does not read cannot keep the task.
            let refusing = refuse(tcp);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), refusing).await;
            });
            continue;
        };
        let (tx, rx) = oneshot::channel();
        let admission = Admission {
            preauth: Some(preauth),
            sessions: sessions_limit.clone(),
            session: None,
            logged_in: Some(tx),
        };
        let running = session(tcp, peer, admission, shutdown.clone());
        sessions.spawn(async move {
            tokio::pin!(running);
            // Until it logs in, the connection has the handshake timeout.
            let before_login = tokio::time::timeout(handshake, async {
                tokio::select! {
                    _ = &mut running => true,
                    _ = rx => false,
                }
            })
            .await;
            match before_login {
                Err(_) => tracing::debug!(client = %peer, "closed: not logged in within the handshake timeout"),
                Ok(true) => {}
                Ok(false) => running.await,
            }
        });
    }
    tracing::info!(
        sessions = sessions.len(),
        "{protocol} listener stopped; draining sessions"
    );
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_timeout + Duration::from_secs(1), drain)
        .await
        .is_err()
    {
        tracing::warn!("sessions still running after the shutdown timeout; closing them");
        sessions.shutdown().await;
    }
}

/// Says, in the log and on stderr, that Airlock's service login to the
/// `protocol` upstream is a superuser: then one statement the classifier
/// misjudges can do anything, and the identities' `upstream_role` is the
/// only limit the server enforces (README: a least-privilege account).
pub fn warn_superuser_login(protocol: &str, user: &str) {
    tracing::warn!(
        protocol,
        user,
        "Airlock's service login to the upstream is a superuser; create a least-privilege account (see the README) and use upstream_role"
    );
    eprintln!(
        "warning: the {protocol} upstream login `{user}` is a superuser: one statement Airlock misjudges could do anything; \
         use a least-privilege service account and [[identity]] upstream_role (see the README)"
    );
}

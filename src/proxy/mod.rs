//! The wire side of Airlock: one sub-module per database protocol, plus what
//! they share (TLS setup, the byte stream type, shutdown).
//!
//! Everything that knows a wire format lives under here; the decisions are
//! taken by [`crate::gate`].

pub mod capped;
pub mod mysql;
pub mod pg;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
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

/// How many sessions a listener runs at once, and how long they get to
/// finish when the gateway stops.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

/// A listener's life, the same for every protocol: accepts until
/// `shutdown` turns true, runs `session` for each connection (at most
/// `limits.max_connections` at once; beyond that `refuse` answers the
/// connection in the protocol's own words), then lets running sessions
/// finish for the shutdown timeout and closes those still running.
pub async fn serve_sessions<S, R>(
    listener: &TcpListener,
    protocol: &'static str,
    limits: SessionLimits,
    shutdown: watch::Receiver<bool>,
    refuse: impl Fn(TcpStream) -> R,
    session: impl Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> S,
) where
    S: Future<Output = ()> + Send + 'static,
    R: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(limits.max_connections));
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tokio::spawn(refuse(tcp));
            continue;
        };
        let running = session(tcp, peer, shutdown.clone());
        sessions.spawn(async move {
            running.await;
            drop(permit);
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

//! The HTTP accept loop: connections under a limit, each with a header read timeout, and a
//! graceful shutdown that does not wait forever.
//!
//! `axum::serve` accepts every connection and waits for headers without end: 200 clients that
//! send a byte every 2 s hold 200 descriptors forever, until `/healthz` times out and a
//! checkpoint fails with "Too many open files". This loop runs the same router on hyper's
//! HTTP/1 connection, with a timer, so that a client must send a request's headers (or the next
//! request on a kept-alive connection) within `http.header_timeout`, and at most
//! `http.max_connections` are open at once; past that, new connections are closed at once.
//! Bodies have their own timeout where they are read ([`super`]'s SQL handler).
//!
//! Owns: accepting, the connection limit and timeouts, shutdown. Must not touch: routes,
//! authentication (this happens before either).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits on connections, before any request is read.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers, or to start the next request on a
    /// kept-alive connection.
    pub header_timeout: Duration,
}

/// How long shutdown waits for requests in flight (a query, a stream) before it goes on.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut refused_logged = false;
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: keep serving
                    // the connections that are open; back off so the loop does not spin.
                    tracing::warn!(error = %e, "Cannot accept an HTTP connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !refused_logged {
                tracing::warn!(
                    max = limits.max_connections,
                    "HTTP connections are at http.max_connections; closing new ones until some end."
                );
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        let header_timeout = limits.header_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let stopped = async move {
                // An error means the sender is gone: shutting down as well.
                let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
            };
            tokio::select! {
                _ = &mut conn => {}
                () = stopped => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::info!(
            "Closing the HTTP connections still open after {}s.",
            SHUTDOWN_GRACE.as_secs()
        );
        connections.abort_all();
    }
    Ok(())
}

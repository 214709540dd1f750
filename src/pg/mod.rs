//! PostgreSQL in: the wire-protocol front door that psql, Grafana, DBeaver, JDBC and psycopg
//! connect to (`run --pg`, `[pg] bind`, `serve-archive`; docs/postgres.md).
//!
//! Owns: the accept loop (connection limit, TLS, who hung up), start-up and authentication
//! ([`auth`]), the session commands clients send that are not queries ([`session`]: `SET`,
//! `SHOW`, transactions), and turning queries and their answers into protocol messages
//! ([`queries`]). The protocol itself is `pgwire`'s. Must not touch: how SQL is planned and
//! limited (that is `crate::sql`: the same [`QueryRunner`] as `POST /api/sql`, so the same
//! read-only refusal, timeout, memory pool, row limit and low-priority threads), engine state
//! (it takes a snapshot under the engine lock, as HTTP does).

mod auth;
mod queries;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use datafusion_postgres::pgwire;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers, RandomPidSecretKeyGenerator};
use pgwire::tokio::tokio_rustls::rustls;
pub use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpListener;

use crate::sql::postgres::PgFlavor;
use crate::sql::QueryRunner;
use crate::state::{Engine, Snapshot};

pub use crate::sql::postgres::SERVER_VERSION;

/// Where the rows come from.
pub enum Source {
    /// The live engine: each query reads a snapshot taken under its lock.
    Live(Arc<Mutex<Engine>>),
    /// A fixed snapshot (empty for `serve-archive`, whose tables are the archive's).
    Fixed(Arc<Snapshot>),
}

/// Everything a connection needs, shared by all of them.
pub struct PgService {
    /// PostgreSQL's flavour of SQL: `pg_catalog` and the client-SQL rewrites.
    pub flavor: Arc<PgFlavor>,
    /// Runs the queries under the service's limits (shared with `POST /api/sql`).
    pub queries: Arc<QueryRunner>,
    /// Where the rows come from.
    pub source: Source,
    /// With a token, clients authenticate with SCRAM-SHA-256 and the token as the password;
    /// without, anyone who reaches the port gets in (loopback by default, as HTTP).
    pub token: Option<String>,
    /// TLS, when a certificate is configured.
    pub tls: Option<TlsAcceptor>,
    /// Most connections open at once; more get PostgreSQL's "too many clients" and are closed.
    pub max_connections: usize,
    /// A second handle on each open connection's socket, to see a client hang up mid-query,
    /// with the connection's number: a closed connection's clean-up must not remove a newer
    /// one from the same address and port.
    hangups: Mutex<HashMap<SocketAddr, (u64, std::net::TcpStream)>>,
    /// Numbers the connections.
    accepted: std::sync::atomic::AtomicU64,
    /// Cancel requests find their query through this.
    connections: Arc<ConnectionManager>,
    pids: Arc<RandomPidSecretKeyGenerator>,
    scram: Option<auth::ScramSecret>,
}

impl PgService {
    /// The front door's shared parts; `tls` from [`load_tls`].
    pub fn new(
        flavor: Arc<PgFlavor>,
        queries: Arc<QueryRunner>,
        source: Source,
        token: Option<String>,
        tls: Option<TlsAcceptor>,
        max_connections: usize,
    ) -> PgService {
        let scram = token.as_deref().map(auth::ScramSecret::new);
        PgService {
            flavor,
            queries,
            source,
            token,
            tls,
            max_connections,
            hangups: Mutex::new(HashMap::new()),
            accepted: std::sync::atomic::AtomicU64::new(0),
            connections: Arc::new(ConnectionManager::new()),
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
            scram,
        }
    }

    /// A snapshot to query, taken off the async workers.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, String> {
        match &self.source {
            Source::Fixed(s) => Ok(s.clone()),
            // A cluster member's queries read the members' own snapshots.
            Source::Live(_) if self.queries.reads_remote_tables() => {
                Ok(Arc::new(Snapshot::empty()))
            }
            Source::Live(engine) => {
                let engine = engine.clone();
                tokio::task::spawn_blocking(move || {
                    Arc::new(engine.lock().expect("engine lock").snapshot())
                })
                .await
                .map_err(|e| format!("snapshot failed: {e}"))
            }
        }
    }

    /// Resolves when the client at `peer` has closed its end (or its socket failed).
    async fn hung_up(&self, peer: SocketAddr) {
        let Some(socket) = self
            .hangups
            .lock()
            .expect("not poisoned")
            .get(&peer)
            .and_then(|(_, s)| s.try_clone().ok())
        else {
            return std::future::pending().await;
        };
        let mut byte = [0u8; 1];
        loop {
            // The socket is non-blocking (tokio's): a peek answers at once. Zero bytes is the
            // client's FIN; bytes waiting (a pipelined message, a cancel) mean it is there.
            match socket.peek(&mut byte) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Reads a PEM certificate chain and private key for TLS; the error says which file and why.
pub fn load_tls(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("pg.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "pg.tls_cert {} holds no certificate; give a PEM file with -----BEGIN CERTIFICATE-----",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("pg.tls_key {}: {e}", key.display()))?;
    // ring, not aws-lc-rs: it is what pgwire is built with here, and a far smaller C build.
    // Its provider lacks only the post-quantum key exchange, which is what the deprecation says.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("pg.tls_cert and pg.tls_key do not make a TLS identity: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// One connection's handlers.
struct Handlers {
    service: Arc<PgService>,
    queries: Arc<queries::Queries>,
    /// Why this connection is turned away at start-up (over the connection limit).
    refuse: Option<&'static str>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(auth::Startup::new(&self.service, self.refuse))
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.service.connections.clone()))
    }
}

/// Serves PostgreSQL clients on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    service: Arc<PgService>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(service.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "PostgreSQL accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let permit = open.clone().try_acquire_owned().ok();
        let refuse = permit
            .is_none()
            .then_some("sorry, too many clients already (pg.max_connections); try again when a connection closes");
        let watch = std::os::fd::AsFd::as_fd(&socket)
            .try_clone_to_owned()
            .map(std::net::TcpStream::from);
        let number = service
            .accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(watch) = watch {
            service
                .hangups
                .lock()
                .expect("not poisoned")
                .insert(peer, (number, watch));
        }
        let service = service.clone();
        tokio::spawn(async move {
            let handlers = Arc::new(Handlers {
                queries: Arc::new(queries::Queries::new(service.clone())),
                service: service.clone(),
                refuse,
            });
            if let Err(e) =
                pgwire::tokio::process_socket(socket, service.tls.clone(), handlers).await
            {
                tracing::debug!(%peer, error = %e, "PostgreSQL connection ended with an error");
            }
            let mut hangups = service.hangups.lock().expect("not poisoned");
            if hangups.get(&peer).is_some_and(|(n, _)| *n == number) {
                hangups.remove(&peer);
            }
            drop(hangups);
            drop(permit);
        });
    }
}

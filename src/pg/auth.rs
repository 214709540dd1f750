//! Start-up: who may connect.
//!
//! Owns: the three doors a connection meets. Over the connection limit, a FATAL "too many
//! clients" (SQLSTATE 53300). With the service's token, SCRAM-SHA-256 with the token as the
//! password, any user name (pgwire's SASL handler). Without a token, no password, as HTTP
//! without one. Must not touch: queries.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::Sink;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource,
    DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{ClientInfo, ConnectionHandle, PidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::PgService;

/// The token, salted and hashed once per process (4096 rounds of PBKDF2 is a few milliseconds:
/// not to be paid on every connection).
#[derive(Debug, Clone)]
pub(super) struct ScramSecret {
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl ScramSecret {
    pub(super) fn new(token: &str) -> ScramSecret {
        let salt: [u8; 16] = std::array::from_fn(|_| rand_byte());
        ScramSecret {
            salted: gen_salted_password(token, &salt, SCRAM_ITERATIONS),
            salt: salt.to_vec(),
        }
    }
}

/// A random byte from the OS (std's hasher keys are seeded from it).
fn rand_byte() -> u8 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() as u8
}

#[async_trait]
impl AuthSource for ScramSecret {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(Some(self.salt.clone()), self.salted.clone()))
    }
}

/// What the client is told at start-up.
pub(super) fn parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = super::SERVER_VERSION.to_string();
    p.is_superuser = false;
    p.default_transaction_read_only = true;
    p.time_zone = "UTC".to_string();
    p.date_style = "ISO, MDY".to_string();
    p
}

/// One connection's start-up handler.
pub(super) enum Startup {
    Refuse(&'static str),
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
    Open(Arc<PgService>),
}

impl Startup {
    pub(super) fn new(service: &Arc<PgService>, refuse: Option<&'static str>) -> Startup {
        if let Some(why) = refuse {
            return Startup::Refuse(why);
        }
        match &service.scram {
            Some(secret) => {
                let pids: Arc<dyn PidSecretKeyGenerator> = service.pids.clone();
                Startup::Scram(Box::new(
                    SASLAuthStartupHandler::new(Arc::new(parameters()))
                        .with_scram(ScramAuth::new(Arc::new(secret.clone())))
                        .with_pid_secret_key_generator(pids)
                        .with_connection_manager(service.connections.clone()),
                ))
            }
            None => Startup::Open(service.clone()),
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Refuse(why) => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "53300".into(),
                (*why).into(),
            )))),
            Startup::Scram(sasl) => sasl.on_startup(client, message).await,
            Startup::Open(service) => {
                let PgWireFrontendMessage::Startup(startup) = message else {
                    return Ok(());
                };
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                let (pid, secret) = service.pids.generate(client);
                client.set_pid_and_secret_key(pid, secret.clone());
                // What lets a CancelRequest from another connection find this one's query.
                let (handle, guard) = service.connections.register(pid, secret);
                client
                    .session_extensions()
                    .insert::<Arc<ConnectionHandle>>(handle);
                client.session_extensions().insert(guard);
                finish_authentication(client, &parameters()).await
            }
        }
    }
}

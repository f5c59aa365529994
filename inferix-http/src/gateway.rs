//! The HTTP API's way to the manager: one manager connection per API key,
//! made as a client of that account, kept for the key's next requests.
//!
//! Every rule (who may see a job, whether an account can pay) is the
//! manager's: the API asks as the caller and relays the answer, so HTTP
//! and QUIC clients cannot be treated differently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use inferix_node::{Client, ClientError};
use inferix_transport::Transport;

use crate::error::ApiError;

/// Connections kept at once; beyond, the least recently made goes.
const MAX_CONNECTIONS: usize = 256;

/// Who a connection acts for: the BLAKE3 of the key (keys are not kept),
/// or the guest (no key).
type Caller = Option<[u8; 32]>;

/// Manager connections by API key.
pub(crate) struct Gateway {
    transport: Arc<dyn Transport>,
    manager: String,
    clients: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    by_caller: HashMap<Caller, (u64, Arc<Client>)>,
    made: u64,
}

impl Gateway {
    pub(crate) fn new(transport: Arc<dyn Transport>, manager: String) -> Self {
        Self {
            transport,
            manager,
            clients: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection acting for `key`, made when there is none. A key the
    /// manager refuses is answered 401.
    pub(crate) async fn client(&self, key: Option<&str>) -> Result<Session, ApiError> {
        let caller = key.map(|k| *blake3::hash(k.as_bytes()).as_bytes());
        if let Some((_, c)) = self.lock().by_caller.get(&caller) {
            return Ok(Session {
                client: c.clone(),
                caller,
            });
        }
        let client =
            match Client::connect(&*self.transport, &self.manager, key.map(Into::into)).await {
                Ok(c) => Arc::new(c),
                Err(e @ ClientError::Refused { .. }) => {
                    let ApiError { message, .. } = ApiError::from(e);
                    return Err(ApiError::unauthorized(message));
                }
                Err(e) => return Err(e.into()),
            };
        let mut g = self.lock();
        g.made += 1;
        let made = g.made;
        g.by_caller.insert(caller, (made, client.clone()));
        if g.by_caller.len() > MAX_CONNECTIONS {
            let oldest = g
                .by_caller
                .iter()
                .min_by_key(|(_, (m, _))| *m)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                g.by_caller.remove(&k);
            }
        }
        Ok(Session { client, caller })
    }

    /// Forgets a connection that failed (a restarted manager), so that
    /// the caller's next request makes a new one.
    pub(crate) fn forget(&self, caller: &Caller) {
        self.lock().by_caller.remove(caller);
    }
}

/// A request's connection to the manager, as its caller.
pub(crate) struct Session {
    pub(crate) client: Arc<Client>,
    caller: Caller,
}

impl Session {
    /// Relays a client call's error, dropping the connection when it is
    /// the connection that failed.
    pub(crate) fn fail(&self, gateway: &Gateway, e: ClientError) -> ApiError {
        if matches!(e, ClientError::Transport(_)) {
            gateway.forget(&self.caller);
        }
        e.into()
    }
}

/// The API key of a request: `Authorization: Bearer <key>`; none makes the
/// request the guest's (refused unless the manager has a guest account).
pub(crate) struct ApiKey(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Self(None));
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        match text.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Self(Some(key.trim().to_string())))
            }
            _ => Err(ApiError::unauthorized(
                "expected Authorization: Bearer <API key>",
            )),
        }
    }
}

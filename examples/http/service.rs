//! The service: its routes, the state they share, and a server that starts and stops.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use cqrs_core::ident::IdentifierError;
use cqrs_core::subscription::{Project, Subscription, SubscriptionError, SubscriptionHandle};
use cqrs_core::{Engine, StoreHealth};
use examples::Backend;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::balances::Balances;
use crate::domain::Account;
use crate::error::ApiError;
use crate::{commands, queries, status, telemetry};

/// What every handler may use. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct AppState {
    /// Runs the commands.
    pub engine: Engine<Account>,
    /// The read model the queries answer from.
    pub balances: Balances,
    /// The subscription that feeds it.
    pub feed: Arc<SubscriptionHandle>,
    /// The store's own health check.
    pub health: Arc<dyn StoreHealth>,
    /// What `GET /metrics` renders.
    pub metrics: PrometheusHandle,
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/accounts", post(commands::open))
        .route("/accounts/{id}", get(queries::account))
        .route("/accounts/{id}/deposits", post(commands::deposit))
        .route("/accounts/{id}/withdrawals", post(commands::withdraw))
        .route("/status", get(status::status))
        .route("/metrics", get(telemetry::metrics))
        .fallback(ApiError::no_route)
        .method_not_allowed_fallback(ApiError::wrong_method)
        // A route layer, so that the span knows the route that matched.
        .route_layer(axum::middleware::from_fn(telemetry::request_span))
        .with_state(state)
}

/// Why the service could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The server's task panicked.
    #[error("the server's task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The read model's subscription had failed.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// The read model's name or event types are not valid identifiers.
    #[error("the read model was refused: {0}")]
    ReadModel(#[from] IdentifierError),
}

/// A running service: a server on a bound address, and the subscription feeding its read
/// model.
pub struct Service {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    feed: Arc<SubscriptionHandle>,
}

impl Service {
    /// Starts the service on `backend`, listening on `addr` (port 0: a free port), with
    /// `/metrics` rendered from `metrics`.
    pub async fn start(
        backend: &Backend,
        addr: SocketAddr,
        metrics: PrometheusHandle,
    ) -> Result<Self, ServiceError> {
        let listen = |source| ServiceError::Listen { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;

        // The view lives in this process's memory, so its checkpoint does too: each start
        // rebuilds it from the log, whatever the backend.
        let balances = Balances::default();
        let feed = Arc::new(
            Subscription::new(
                backend.events.clone(),
                Project::new(balances.clone(), cqrs_memory::MemoryStore::new())?,
            )
            .start(),
        );
        let state = AppState {
            engine: Engine::new(backend.events.clone(), ()),
            balances,
            feed: Arc::clone(&feed),
            health: backend.health.clone(),
            metrics,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router(state)).with_graceful_shutdown(async {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        });
        Ok(Self {
            addr,
            stop,
            server: tokio::spawn(async move { server.await }),
            feed,
        })
    }

    /// The address the service listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections, lets the requests in flight finish, then stops the
    /// subscription (which saves its checkpoint).
    pub async fn stop(self) -> Result<(), ServiceError> {
        // An error means the server already ended: its result says why.
        let _ = self.stop.send(());
        self.server.await?.map_err(ServiceError::Serve)?;
        // The server's connections held the other clones; if one still lives, dropping
        // ours leaves the subscription to stop when that one goes.
        if let Some(feed) = Arc::into_inner(self.feed) {
            feed.shutdown().await?;
        }
        Ok(())
    }
}

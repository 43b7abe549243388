//! The configuration requests are served with: the router (backends, buckets and the
//! policies they name) and the users, swapped together by a reload.
//!
//! A request takes one snapshot when it arrives and keeps it to the end: the signature
//! check, the access decisions and the operation all see the same users and buckets, and a
//! reload meanwhile changes only the requests that arrive after it. The listener takes it
//! ([`Live::load`], [`Live::scope`]) and each step reads it back ([`Live::current`]) through a task-local,
//! because s3s asks for a secret key ([`super::Auth`]) with nothing but the access key:
//! there is no request to hang the snapshot on.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Users;
use crate::router::Router;

/// One configuration: what a request is served with from start to end.
pub struct Snapshot {
    pub router: Arc<Router>,
    pub users: Arc<Users>,
}

tokio::task_local! {
    /// The snapshot of the request being served on this task.
    static CURRENT: Arc<Snapshot>;
}

/// The snapshot in service, replaced whole by a reload.
#[derive(Clone)]
pub struct Live(Arc<ArcSwap<Snapshot>>);

impl Live {
    pub fn new(snapshot: Snapshot) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(snapshot)))
    }

    /// The snapshot of the request being served (taken when it arrived), or the one in
    /// service outside a request.
    pub fn current(&self) -> Arc<Snapshot> {
        CURRENT
            .try_with(Arc::clone)
            .unwrap_or_else(|_| self.0.load_full())
    }

    /// The snapshot in service now, for a request that arrives.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Runs a request's future with `snapshot` as its own.
    pub fn scope<F: Future>(snapshot: Arc<Snapshot>, request: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(snapshot, request)
    }

    /// Puts `snapshot` in service for the requests that arrive from now on.
    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}

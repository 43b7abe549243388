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
    pub fn scope<F: Future>(
        snapshot: Arc<Snapshot>,
        request: F,
    ) -> impl Future<Output = F::Output> {
        CURRENT.scope(snapshot, request)
    }

    /// Puts `snapshot` in service for the requests that arrive from now on.
    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::Metrics;

    /// A configuration whose only user has access key `user`.
    fn snapshot(user: &str) -> Snapshot {
        let config = Config::from_toml(&format!(
            "version = 1\n[[users]]\naccess_key = \"{user}\"\nsecret_key = \"{user}-secret\"\n"
        ))
        .unwrap();
        Snapshot {
            users: Arc::new(Users::from_config(&config).unwrap()),
            router: Arc::new(
                Router::new(Arc::new(config), None, Arc::new(Metrics::default())).unwrap(),
            ),
        }
    }

    /// A request sees the configuration it arrived with to its end, whatever a reload puts
    /// in service meanwhile; the requests after the reload see the new one.
    #[tokio::test]
    async fn a_request_keeps_its_snapshot_across_a_reload() {
        let live = Live::new(snapshot("before"));
        let request = Live::scope(live.load(), async {
            let first = live.current();
            live.store(snapshot("after"));
            tokio::task::yield_now().await;
            let then = live.current();
            (
                Arc::ptr_eq(&first, &then),
                then.users.get("before").is_some(),
            )
        });
        assert_eq!(request.await, (true, true));
        assert!(live.current().users.get("after").is_some());
        let next = Live::scope(live.load(), async {
            live.current().users.get("after").is_some()
        });
        assert!(next.await);
    }
}

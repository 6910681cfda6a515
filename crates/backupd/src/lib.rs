//! backupd, the daemon: it follows usbmuxd, runs one task per attached iPhone that pairs, reads the phone and
//! diagnoses its backups with `backupd-rules`, and serves the results on a Unix socket (`docs/api.md`).
//!
//! Only this crate spawns tasks or holds state. [`run`] takes the shutdown signal as a future, so tests (and
//! `main`, with SIGTERM/SIGINT) decide when it stops; every task is tracked and awaited before it returns.

pub mod config;
pub mod device;
pub mod host;
pub mod jobs;
pub mod metrics;
pub mod password;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod supervisor;
pub mod usb;

use std::future::Future;

use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Settings;

/// Runs the daemon on an already bound API socket until `shutdown` completes.
pub async fn run(settings: Settings, listener: UnixListener, shutdown: impl Future<Output = ()>) {
    let store = state::Store::load(&settings.state_dir);
    let metrics_listen = settings.metrics_listen;
    let (handles_tx, handles_rx) = oneshot::channel();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let core = async {
        supervisor::run(settings, store, handles_tx, shutdown).await;
        // The core has stopped every phone task; now the API stops taking requests.
        cancel.cancel();
    };
    let api = async {
        if let Ok(handles) = handles_rx.await {
            if let Some(addr) = metrics_listen {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => {
                        tracing::info!(%addr, "serving GET /metrics over TCP");
                        tracker.spawn(metrics::serve_tcp(
                            l,
                            handles.clone(),
                            cancel.clone(),
                            tracker.clone(),
                        ));
                    }
                    Err(e) => {
                        tracing::error!(%addr, error = %e, "cannot open the metrics listener")
                    }
                }
            }
            server::serve(listener, handles, cancel.clone(), tracker.clone()).await;
        }
    };
    tokio::join!(core, api);
    tracker.close();
    tracker.wait().await;
    tracing::info!("stopped");
}

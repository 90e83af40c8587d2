//! The tokio runtime owned by kith-ffi.
//!
//! Foreign code calls in on its own threads (a phone's UI thread among them).
//! Work that may take long, and later all network I/O, runs on this runtime;
//! the exported `async` methods hand it the work and return a future that the
//! foreign language awaits (a Kotlin coroutine, a Swift task, a Python
//! coroutine), so the caller's thread never blocks on it. One runtime per
//! process, created on first use, with a small fixed number of threads: a phone
//! has few cores and the store serialises writes anyway.

use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::error::{KithError, KithResult};

/// Worker threads for async tasks (network I/O once sync lands).
const WORKER_THREADS: usize = 2;
/// Upper bound on threads that run blocking store work for async methods.
const BLOCKING_THREADS_MAX: usize = 4;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process-wide runtime, built on first use.
pub(crate) fn runtime() -> KithResult<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .max_blocking_threads(BLOCKING_THREADS_MAX)
                .thread_name("kith-ffi")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| KithError::Internal {
            reason: format!("cannot start the Kith runtime: {e}"),
        })
}

/// Runs blocking work (store I/O) on the runtime's blocking pool and awaits it
/// without blocking the awaiting thread. A panic in `work` becomes
/// `KithError::Internal`.
pub(crate) async fn run_blocking<T, F>(operation: &'static str, work: F) -> KithResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> KithResult<T> + Send + 'static,
{
    let handle = runtime()?.spawn_blocking(move || crate::guard::guard(operation, work));
    // The JoinHandle is polled by the foreign executor, outside the runtime:
    // tokio's JoinHandle only needs a waker, not a runtime context.
    match handle.await {
        Ok(result) => result,
        Err(e) => Err(KithError::Internal {
            reason: format!("{operation} did not complete: {e}"),
        }),
    }
}

/// A task aborted when its awaiting future is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs async work (network I/O) as a task on the runtime and awaits it
/// without blocking the awaiting thread: the foreign executor only polls the
/// task's handle. A panic in the task becomes `KithError::Internal`. Dropping the
/// returned future (cancellation on the foreign side) aborts the task.
pub(crate) async fn run_async<T, F>(operation: &'static str, work: F) -> KithResult<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = KithResult<T>> + Send + 'static,
{
    // The foreign side cancels by dropping this future (a cancelled Kotlin coroutine, Swift
    // Task or Python task): the task goes with it instead of running to its timeout.
    let mut handle = AbortOnDrop(runtime()?.spawn(work));
    match (&mut handle.0).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(KithError::Internal {
            reason: format!(
                "{operation} panicked: {}",
                crate::guard::panic_message(e.into_panic().as_ref())
            ),
        }),
        Err(e) => Err(KithError::Internal {
            reason: format!("{operation} did not complete: {e}"),
        }),
    }
}

//! The tokio runtime owned by kith-ffi.
//!
//! Foreign code calls in on its own threads (a phone's UI thread among them).
//! Work that may take long, and later all network I/O, runs on this runtime;
//! the exported `async` methods hand it the work and return a future that the
//! foreign language awaits (a Kotlin coroutine, a Swift task, a Python
//! coroutine), so the caller's thread never blocks on it. One runtime per
//! process, created on first use, with a small fixed number of threads: a phone
//! has few cores and the store serialises writes anyway.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
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

/// What the runtime's tasks hand back: each caller's result, boxed and typed
/// again by the generic wrapper that spawned it.
type Output = Box<dyn Any + Send>;

/// Runs blocking work (store I/O) on the runtime's blocking pool and awaits it
/// without blocking the awaiting thread. A panic in `work` becomes
/// `KithError::Internal`.
///
/// The work crosses to the pool type-erased (one boxed closure type for all
/// callers): tokio compiles a task's machinery once per closure or future
/// type, and at one copy per exported method that was 170 KB of the x86_64
/// phone library (issue 15, `scripts/lib-size.sh`). The box and the downcast
/// cost nanoseconds against an operation that touches the disk.
pub(crate) async fn run_blocking<T, F>(operation: &'static str, work: F) -> KithResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> KithResult<T> + Send + 'static,
{
    let work: Box<dyn FnOnce() -> Output + Send> = Box::new(move || Box::new(work()));
    typed(operation, run_blocking_erased(operation, work).await?)
}

async fn run_blocking_erased(
    operation: &'static str,
    work: Box<dyn FnOnce() -> Output + Send>,
) -> KithResult<Output> {
    let handle = runtime()?.spawn_blocking(move || crate::guard::guard(operation, || Ok(work())));
    // The JoinHandle is polled by the foreign executor, outside the runtime:
    // tokio's JoinHandle only needs a waker, not a runtime context.
    match handle.await {
        Ok(result) => result,
        Err(e) => Err(KithError::Internal {
            reason: format!("{operation} did not complete: {e}"),
        }),
    }
}

/// The caller's result back from a task's erased output.
fn typed<T: 'static>(operation: &str, output: Output) -> KithResult<T> {
    match output.downcast::<KithResult<T>>() {
        Ok(result) => *result,
        // Unreachable: each wrapper boxes exactly the type it unboxes.
        Err(_) => Err(KithError::Internal {
            reason: format!("{operation} returned an unexpected type"),
        }),
    }
}

/// A task aborted when its awaiting future is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Output>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs async work (network I/O) as a task on the runtime and awaits it
/// without blocking the awaiting thread: the foreign executor only polls the
/// task's handle. A panic in the task becomes `KithError::Internal`. Dropping the
/// returned future (cancellation on the foreign side) aborts the task.
///
/// Type-erased like [`run_blocking`]: one task type for every caller.
pub(crate) async fn run_async<T, F>(operation: &'static str, work: F) -> KithResult<T>
where
    T: Send + 'static,
    F: Future<Output = KithResult<T>> + Send + 'static,
{
    let work: Pin<Box<dyn Future<Output = Output> + Send>> =
        Box::pin(async move { Box::new(work.await) as Output });
    typed(operation, run_async_erased(operation, work).await?)
}

async fn run_async_erased(
    operation: &'static str,
    work: Pin<Box<dyn Future<Output = Output> + Send>>,
) -> KithResult<Output> {
    // The foreign side cancels by dropping this future (a cancelled Kotlin coroutine, Swift
    // Task or Python task): the task goes with it instead of running to its timeout.
    let mut handle = AbortOnDrop(runtime()?.spawn(work));
    match (&mut handle.0).await {
        Ok(output) => Ok(output),
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

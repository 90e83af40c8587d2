//! The panic guard: no Rust panic crosses the FFI boundary.
//!
//! Every exported method runs its body through [`guard`], which catches an
//! unwinding panic and turns it into [`KithError::Internal`] carrying the panic
//! message. uniffi would otherwise surface a panic as its own generic
//! "unexpected error"; with the guard the app gets the one error type it
//! already handles. This needs `panic = "unwind"`: the dev, test and release
//! profiles. The `release-ffi` profile phone apps ship is `panic = "abort"`
//! (size, issue 15): there a panic runs the hook of [`crate::logging`], which
//! reports it through the app's logger, and then ends the process as a crash;
//! the guard never sees it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{KithError, KithResult};

/// Runs `body`, turning a panic inside it into `KithError::Internal`.
///
/// `AssertUnwindSafe` is sound here because the state a body touches is
/// either the store (whose writes are redb transactions: a panic before commit
/// aborts the transaction, so nothing half-written survives) or mutex-guarded
/// state that callers recover with [`crate::kith`]'s poison handling.
pub(crate) fn guard<T>(operation: &str, body: impl FnOnce() -> KithResult<T>) -> KithResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => Err(KithError::Internal {
            reason: format!("{operation} panicked: {}", panic_message(payload.as_ref())),
        }),
    }
}

/// The message of a panic payload (`panic!` with a literal or a format string).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_internal_with_its_message() {
        let r: KithResult<()> = guard("op", || {
            let i = 3;
            panic!("boom {i}");
        });
        match r {
            Err(KithError::Internal { reason }) => assert_eq!(reason, "op panicked: boom 3"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn results_pass_through_untouched() {
        assert_eq!(guard("op", || Ok(5)), Ok(5));
        let e = KithError::invalid("name", "empty");
        assert_eq!(guard::<()>("op", || Err(e.clone())), Err(e));
    }
}

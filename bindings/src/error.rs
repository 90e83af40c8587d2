//! The one error type foreign code sees, with cases an app can act on.
//!
//! Every engine error is mapped here to the case that tells the app what to do:
//! show a "not found" state, highlight the named input field, tell the user the
//! storage failed, retry after `enter_foreground()`, retry when online, re-pair, or
//! resolve a conflict. `Internal` is a bug (a caught panic included); the
//! message says what happened, and the store is left as it was.
//!
//! The text field is `reason`, not `message`: Kotlin exceptions already have a
//! `message` property, and a field of that name makes the generated Kotlin
//! ambiguous. `toString()`/`message` on the foreign side give the full text.

/// Errors returned by every fallible `Kith` method.
///
/// Its `Display` text is exported (Kotlin `toString()`, Swift `description`,
/// Python `str()`): "invalid limit: must be between 1 and 1000 (got 0)".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum KithError {
    /// The record does not exist (or was merged away / deleted past recovery).
    #[error("{what} not found: {id}")]
    NotFound {
        /// Which kind of record ("contact", "interaction", ...).
        what: String,
        /// The id asked for.
        id: String,
    },
    /// An argument was rejected; `field` names it so a form can highlight it.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument or record field rejected.
        field: String,
        /// Why, in words for the user.
        reason: String,
    },
    /// The store could not be read or written (disk full, damaged file, I/O).
    #[error("storage error: {reason}")]
    Storage {
        /// The underlying error, for the user or a log.
        reason: String,
    },
    /// The store is locked: another process holds it, or it is released (no
    /// handle in the foreground: call `enter_foreground()`), or this handle is
    /// closed (open it again).
    #[error("store unavailable: {reason}")]
    Locked {
        /// Which of these it is.
        reason: String,
    },
    /// A network operation failed; retry later.
    #[error("network error: {reason}")]
    Network {
        /// What failed (unreachable, timed out, connection lost).
        reason: String,
    },
    /// This device is not (or no longer) allowed: re-pair or sign in again.
    #[error("authentication failed: {reason}")]
    Authentication {
        /// Why the device was refused.
        reason: String,
    },
    /// The operation conflicts with the current state (for example a merge of
    /// a contact into itself, or an edit of a record merged away).
    #[error("conflict: {reason}")]
    Conflict {
        /// What conflicts.
        reason: String,
    },
    /// A bug in Kith, a caught panic included. The store is unchanged.
    #[error("internal error: {reason}")]
    Internal {
        /// The bug's message; worth reporting.
        reason: String,
    },
}

impl KithError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        KithError::InvalidInput {
            field: field.to_string(),
            reason: message.into(),
        }
    }

    pub(crate) fn not_found(what: &str, id: impl ToString) -> Self {
        KithError::NotFound {
            what: what.to_string(),
            id: id.to_string(),
        }
    }

    pub(crate) fn locked(message: impl Into<String>) -> Self {
        KithError::Locked {
            reason: message.into(),
        }
    }
}

/// Result type of the exported methods.
pub type KithResult<T> = Result<T, KithError>;

impl From<kith_core::StoreError> for KithError {
    fn from(e: kith_core::StoreError) -> Self {
        use kith_core::StoreError as S;
        let reason = e.to_string();
        match e {
            S::Locked { .. } | S::Closed => KithError::Locked { reason },
            S::Io { .. }
            | S::Damaged { .. }
            | S::NewerFormat { .. }
            | S::RetiredSyncFormat { .. }
            | S::Schema(_)
            | S::Automerge { .. }
            | S::UnknownDoc(_)
            | S::Database(_)
            | S::BadChange { .. } => KithError::Storage { reason },
        }
    }
}

impl From<kith_core::OpError> for KithError {
    fn from(e: kith_core::OpError) -> Self {
        use kith_core::OpError as O;
        let reason = e.to_string();
        let invalid = |field: &str| KithError::InvalidInput {
            field: field.to_string(),
            reason: reason.clone(),
        };
        match e {
            O::EmptyName => invalid("name"),
            O::EmptySummary => invalid("summary"),
            O::EmptyText { what } => invalid(what),
            O::NoParticipants => invalid("participants"),
            O::UnknownNames { .. } | O::AmbiguousName { .. } => invalid("participant_names"),
            O::BadPriority(_) => invalid("priority"),
            O::ExchangeWithNonParticipant(_) => invalid("exchanges"),
            O::Invalid { field, .. } => invalid(field),
            O::UnknownContact(id) => KithError::not_found("contact", id),
            O::UnknownInteraction(id) => KithError::not_found("interaction", id),
            O::UnknownFollowUp { follow_up, .. } => KithError::not_found("follow-up", follow_up),
            O::UnknownProject(id) => KithError::not_found("project", id),
            O::UnknownGoal(id) => KithError::not_found("goal", id),
            O::MergeIntoSelf(_) | O::AlreadyMerged { .. } | O::NotMerged(_) => {
                KithError::Conflict { reason }
            }
            O::Store(s) => s.into(),
        }
    }
}

/// A foreign callback (`KithKeyStore`, `KithListener`) threw something other
/// than a `KithError`: a bug on the app's side, reported as `Internal`.
impl From<uniffi::UnexpectedUniFFICallbackError> for KithError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KithError::Internal {
            reason: format!("an app callback failed: {}", e.reason),
        }
    }
}

impl From<kith_core::identity::KeyStoreError> for KithError {
    fn from(e: kith_core::identity::KeyStoreError) -> Self {
        KithError::Storage {
            reason: format!("the key store failed: {e}"),
        }
    }
}

impl From<kith_core::sync::IdentityError> for KithError {
    fn from(e: kith_core::sync::IdentityError) -> Self {
        use kith_core::sync::IdentityError as I;
        let reason = e.to_string();
        match e {
            // Set up an account first (`create_account` or `join`).
            I::NoAccount => KithError::Authentication {
                reason: "this device has no account yet: call create_account() or join(token)"
                    .to_string(),
            },
            I::BadAccount => KithError::Authentication { reason },
        }
    }
}

impl From<kith_core::sync::PairError> for KithError {
    fn from(e: kith_core::sync::PairError) -> Self {
        use kith_core::sync::PairError as P;
        let reason = e.to_string();
        match e {
            // A typo or a bad scan: the token field is wrong.
            P::Malformed(_) | P::WrongMode { .. } => KithError::InvalidInput {
                field: "token".to_string(),
                reason,
            },
            // Expired, used, for another relay, or not opening: the inviting
            // device must show a new token.
            P::Expired { .. }
            | P::AlreadyUsed
            | P::OtherRelay { .. }
            | P::Decrypt
            | P::RedeemedByAnother
            | P::Refused { .. }
            | P::CodeMismatch { .. } => KithError::Authentication { reason },
            P::AlreadyJoined => KithError::Conflict { reason },
            P::Identity(i) => i.into(),
        }
    }
}

impl From<kith_net::NetError> for KithError {
    fn from(e: kith_net::NetError) -> Self {
        use kith_core::sync::RelaySyncError as R;
        use kith_net::NetError as N;
        use kith_protocol::ErrorCode as C;
        let reason = e.to_string();
        match e {
            N::Store(s) | N::Sync(R::Store(s)) => s.into(),
            N::Sync(R::Relay {
                code:
                    C::AuthFailed
                    | C::BadCertificate
                    | C::DeviceRevoked
                    | C::NotAMember
                    | C::RegistrationRequired
                    | C::BadToken
                    | C::NotAuthenticated
                    | C::WrongAccount
                    | C::BadSignature,
                ..
            }) => KithError::Authentication { reason },
            // The relay is not the one the address pins: a wrong address or
            // an impostor; the user must check the relay address.
            N::Sync(R::WrongRelay { .. }) => KithError::Authentication { reason },
            N::Sync(R::Crypto(_)) => KithError::Internal { reason },
            // This device was revoked: nothing to retry.
            N::Sync(R::Revoked) => KithError::Authentication { reason },
            N::Recover(r) => recover_error(r, reason),
            // Connection trouble of every kind (and cases added later):
            // retry when online.
            _ => KithError::Network { reason },
        }
    }
}

/// A recovery's failure: the field to fix, or what the relay said.
fn recover_error(e: kith_core::sync::relay::RecoverError, reason: String) -> KithError {
    use kith_core::sync::authority::AuthorityError as A;
    use kith_core::sync::relay::RecoverError as E;
    use kith_protocol::ErrorCode as C;
    match e {
        E::Authority(A::BadCode(_) | A::OtherAccount { .. }) | E::OtherAccount { .. } => {
            KithError::invalid("recovery_code", reason)
        }
        E::UnknownDevice(_) | E::NothingKept => KithError::invalid("keep_device_ids", reason),
        E::UnknownAccount { .. } | E::WrongRelay { .. } => KithError::Authentication { reason },
        E::Relay {
            code:
                C::AuthFailed | C::NotAMember | C::DeviceRevoked | C::WrongAccount | C::BadSignature,
            ..
        } => KithError::Authentication { reason },
        E::Store(s) => s.into(),
        E::Authority(_) | E::Membership(_) => KithError::Conflict { reason },
        E::Relay { .. } | E::Protocol(_) => KithError::Network { reason },
    }
}

impl From<kith_net::JoinError> for KithError {
    fn from(e: kith_net::JoinError) -> Self {
        match e {
            kith_net::JoinError::Pair(p) => p.into(),
            kith_net::JoinError::Net(n) => n.into(),
        }
    }
}

impl KithError {
    /// Whether retrying later may succeed (network trouble).
    pub(crate) fn is_network(&self) -> bool {
        matches!(self, KithError::Network { .. })
    }
}

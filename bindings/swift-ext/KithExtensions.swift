// Hand-written Swift shipped with the generated bindings: scripts/bindings.sh copies this file
// next to the generated kith_ffi.swift; add both to the app target (or the Swift package).
//
// What it adds:
//   - `KithError: LocalizedError` with a readable `errorDescription` (uniffi's own is a debug
//     dump; bindings/uniffi.toml turns it off with `omit_localized_error_conformance`), and
//     `kind`, a lowerCamel view of the error's case for `switch`es in Swift style (uniffi 0.32
//     always generates error cases UpperCamel: `.NotFound(what:id:)`);
//   - `Date` helpers: the bindings carry instants as `Int64` milliseconds since the Unix epoch
//     (UTC) in `*Ms` fields, and calendar dates as ISO `YYYY-MM-DD` strings;
//   - `AsyncStream`s over `KithListener`: `kith.changes()` and `kith.syncStates()`.
//
// Not compiled on the machine that wrote it (no Swift toolchain there): see bindings/README.md.

import Foundation

extension KithError: LocalizedError {
    /// The text to show or log: "invalid limit: must be between 1 and 1000 (got 0)"
    /// (the library's own wording, from its exported `Display`).
    public var errorDescription: String? { description }

    /// Which case this is, lowerCamel, without its fields.
    public enum Kind: Sendable, Equatable {
        case notFound, invalidInput, storage, locked, network, authentication, conflict, `internal`
    }

    public var kind: Kind {
        switch self {
        case .NotFound: return .notFound
        case .InvalidInput: return .invalidInput
        case .Storage: return .storage
        case .Locked: return .locked
        case .Network: return .network
        case .Authentication: return .authentication
        case .Conflict: return .conflict
        case .Internal: return .internal
        }
    }
}

// MARK: - Date

extension Date {
    /// An instant of the bindings (`*Ms`: milliseconds since the Unix epoch, UTC).
    public init(kithMs ms: Int64) {
        self.init(timeIntervalSince1970: TimeInterval(ms) / 1000)
    }

    /// The bindings' form of this instant (for `atMs`, `nowMs`, `startMs`, ...).
    public var kithMs: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
}

/// Reads and writes the bindings' calendar dates (ISO `YYYY-MM-DD`, in UTC: the library
/// counts days in UTC).
public enum KithDate {
    private static let formatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withFullDate]
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()

    /// The date `iso` names (`nil` when it is not a `YYYY-MM-DD` date), at 00:00 UTC.
    public static func date(_ iso: String) -> Date? { formatter.date(from: iso) }

    /// The bindings' form of the UTC day of `date`.
    public static func string(_ date: Date) -> String { formatter.string(from: date) }
}

extension Interaction {
    /// When the interaction happened.
    public var at: Date { Date(kithMs: atMs) }
}

extension Contact {
    public var createdAt: Date { Date(kithMs: createdMs) }
    public var updatedAt: Date { Date(kithMs: updatedMs) }
}

extension FollowUp {
    /// The due date, if it has one.
    public var dueDate: Date? { due.flatMap(KithDate.date) }
}

extension SyncStatus {
    /// When this device last completed a sync round.
    public var lastSync: Date? { lastSyncMs.map { Date(kithMs: $0) } }
}

// MARK: - AsyncStream over the listener

private final class StreamListener: KithListener, @unchecked Sendable {
    let change: (ChangeSummary) -> Void
    let state: (SyncState) -> Void
    init(change: @escaping (ChangeSummary) -> Void, state: @escaping (SyncState) -> Void) {
        self.change = change
        self.state = state
    }
    func onChange(summary: ChangeSummary) { change(summary) }
    func onSyncState(state: SyncState) { self.state(state) }
}

extension Kith {
    /// Every change while iterated (local writes and merges from other devices). Bounded: a
    /// consumer more than 64 summaries behind loses the oldest (reload everything then).
    public func changes() -> AsyncStream<ChangeSummary> {
        AsyncStream(bufferingPolicy: .bufferingNewest(64)) { continuation in
            let listener = StreamListener(change: { continuation.yield($0) }, state: { _ in })
            do {
                let handle = try addListener(listener: listener)
                continuation.onTermination = { [weak self] _ in _ = self?.removeListener(handle: handle) }
            } catch {
                continuation.finish()
            }
        }
    }

    /// The sync state now, then every transition while iterated (only the latest kept).
    public func syncStates() -> AsyncStream<SyncState> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let listener = StreamListener(change: { _ in }, state: { continuation.yield($0) })
            do {
                let handle = try addListener(listener: listener)
                continuation.onTermination = { [weak self] _ in _ = self?.removeListener(handle: handle) }
            } catch {
                continuation.finish()
            }
        }
    }
}

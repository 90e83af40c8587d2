//! Typed index tables over one redb table type, `&[u8] -> &[u8]`.
//!
//! Why: redb compiles its whole B-tree (insert, remove, range, page
//! splitting and merging) once per (key, value) type pair. The index had 14
//! distinct pairs (`u128`, `(i64, u128)`, `(&str, u8, u128)`, ... keys),
//! about 60 KB of machine code each in the phone library. Here every index
//! table is a `&[u8] -> &[u8]` redb table (a pair the sync tables already
//! use), and the types live in this thin layer instead: a [`Def`] names a
//! table with its key type ([`Key`]) and value type ([`Val`]); [`Def::open`]
//! opens it in a read or write transaction; [`Tab`] encodes keys and values
//! on the way in and decodes them on the way out.
//!
//! Data flow: `Tab::insert(key, value)` -> [`Key::put`] writes an
//! order-preserving encoding (for every two keys `a < b` exactly when
//! `enc(a) < enc(b)` byte-wise, which redb's `&[u8]` order is), [`Val::put`]
//! the value's bytes -> redb. Ranges encode their bounds the same way, so a
//! scan over encoded keys visits the same rows in the same order as the
//! typed table did. Rows read back are decoded; bytes that do not decode are
//! reported as a damaged index table (reindex repairs it), never a panic.
//!
//! Encodings: unsigned integers big-endian; signed ones big-endian with the
//! sign bit flipped (so negatives sort first); strings with each `0x00` byte
//! written as `0x00 0xFF` and ended by `0x00 0x00` (so a string is never
//! confused with a prefix of a longer one and "a" < "a\0" < "ab" holds);
//! composite keys are their fields' encodings one after another.

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use redb::{
    AccessGuard, ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};

use crate::error::StoreError;

type R<T> = Result<T, StoreError>;

/// The one redb table type every index table is.
pub(crate) type Raw = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// One field of a key: its order-preserving encoding.
pub(crate) trait Field {
    /// What a caller passes in (borrowed for strings).
    type In<'a>: Copy;
    /// What a decoded row holds.
    type Out;
    fn put(v: Self::In<'_>, out: &mut Vec<u8>);
    /// Takes the field off the front of `b`; `None` if `b` does not start with one.
    fn take(b: &mut &[u8]) -> Option<Self::Out>;
}

fn take_array<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = b.split_first_chunk::<N>()?;
    *b = rest;
    Some(*head)
}

impl Field for u8 {
    type In<'a> = u8;
    type Out = u8;
    fn put(v: u8, out: &mut Vec<u8>) {
        out.push(v);
    }
    fn take(b: &mut &[u8]) -> Option<u8> {
        take_array::<1>(b).map(|[v]| v)
    }
}

impl Field for u128 {
    type In<'a> = u128;
    type Out = u128;
    fn put(v: u128, out: &mut Vec<u8>) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<u128> {
        take_array(b).map(u128::from_be_bytes)
    }
}

impl Field for i64 {
    type In<'a> = i64;
    type Out = i64;
    fn put(v: i64, out: &mut Vec<u8>) {
        // Flipping the sign bit maps i64's order onto u64's.
        out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<i64> {
        take_array(b).map(|a| (u64::from_be_bytes(a) ^ (1 << 63)) as i64)
    }
}

impl Field for i32 {
    type In<'a> = i32;
    type Out = i32;
    fn put(v: i32, out: &mut Vec<u8>) {
        out.extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
    }
    fn take(b: &mut &[u8]) -> Option<i32> {
        take_array(b).map(|a| (u32::from_be_bytes(a) ^ (1 << 31)) as i32)
    }
}

/// A string field (`&str` in, `String` out).
#[derive(Debug)]
pub(crate) struct Str;

impl Field for Str {
    type In<'a> = &'a str;
    type Out = String;
    fn put(v: &str, out: &mut Vec<u8>) {
        out.reserve(v.len() + 2);
        for &byte in v.as_bytes() {
            out.push(byte);
            if byte == 0 {
                out.push(0xff);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
    fn take(b: &mut &[u8]) -> Option<String> {
        let mut bytes = Vec::new();
        let mut i = 0;
        loop {
            match (b.get(i), b.get(i + 1)) {
                (Some(0), Some(0)) => break,
                (Some(0), Some(0xff)) => {
                    bytes.push(0);
                    i += 2;
                }
                (Some(0), _) | (None, _) => return None,
                (Some(&c), _) => {
                    bytes.push(c);
                    i += 1;
                }
            }
        }
        *b = b.get(i + 2..)?;
        String::from_utf8(bytes).ok()
    }
}

/// A whole key: one field or a tuple of fields.
pub(crate) trait Key {
    type In<'a>: Copy;
    type Out: std::fmt::Debug;
    fn put(k: Self::In<'_>, out: &mut Vec<u8>);
    /// Decodes a whole key (`None` if bytes are left over or missing).
    fn decode(b: &[u8]) -> Option<Self::Out>;
}

impl<F: Field> Key for F
where
    F::Out: std::fmt::Debug,
{
    type In<'a> = F::In<'a>;
    type Out = F::Out;
    fn put(k: Self::In<'_>, out: &mut Vec<u8>) {
        F::put(k, out);
    }
    fn decode(mut b: &[u8]) -> Option<F::Out> {
        let v = F::take(&mut b)?;
        b.is_empty().then_some(v)
    }
}

impl<A: Field, B: Field> Key for (A, B)
where
    (A::Out, B::Out): std::fmt::Debug,
{
    type In<'a> = (A::In<'a>, B::In<'a>);
    type Out = (A::Out, B::Out);
    fn put((a, b): Self::In<'_>, out: &mut Vec<u8>) {
        A::put(a, out);
        B::put(b, out);
    }
    fn decode(mut b: &[u8]) -> Option<Self::Out> {
        let v = (A::take(&mut b)?, B::take(&mut b)?);
        b.is_empty().then_some(v)
    }
}

impl<A: Field, B: Field, C: Field> Key for (A, B, C)
where
    (A::Out, B::Out, C::Out): std::fmt::Debug,
{
    type In<'a> = (A::In<'a>, B::In<'a>, C::In<'a>);
    type Out = (A::Out, B::Out, C::Out);
    fn put((a, b, c): Self::In<'_>, out: &mut Vec<u8>) {
        A::put(a, out);
        B::put(b, out);
        C::put(c, out);
    }
    fn decode(mut b: &[u8]) -> Option<Self::Out> {
        let v = (A::take(&mut b)?, B::take(&mut b)?, C::take(&mut b)?);
        b.is_empty().then_some(v)
    }
}

/// A value type. Values need no order, only a round trip.
pub(crate) trait Val {
    type In<'a>: Copy;
    /// What a read gives: decoded, or for [`Bytes`] the guard itself (no copy).
    type Got<'g>;
    /// Calls `f` with the value's bytes (a record's own bytes, not a copy).
    fn with_bytes<T>(v: Self::In<'_>, f: impl FnOnce(&[u8]) -> T) -> T;
    fn got<'g>(g: AccessGuard<'g, &'static [u8]>) -> Option<Self::Got<'g>>;
    /// The value as the index dump shows it.
    fn show(b: &[u8]) -> Option<String>;
}

/// Opaque bytes (postcard records): read back as redb's guard, `.value()`
/// borrows them.
#[derive(Debug)]
pub(crate) struct Bytes;

impl Val for Bytes {
    type In<'a> = &'a [u8];
    type Got<'g> = AccessGuard<'g, &'static [u8]>;
    fn with_bytes<T>(v: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
        f(v)
    }
    fn got<'g>(g: AccessGuard<'g, &'static [u8]>) -> Option<Self::Got<'g>> {
        Some(g)
    }
    fn show(b: &[u8]) -> Option<String> {
        Some(format!("{b:?}"))
    }
}

/// Values with a fixed encoding, decoded on read.
pub(crate) trait Plain: Sized + Copy + std::fmt::Debug {
    fn put(self, out: &mut Vec<u8>);
    fn take(b: &[u8]) -> Option<Self>;
}

impl<P: Plain> Val for P {
    type In<'a> = P;
    type Got<'g> = P;
    fn with_bytes<T>(v: P, f: impl FnOnce(&[u8]) -> T) -> T {
        let mut out = Vec::new();
        Plain::put(v, &mut out);
        f(&out)
    }
    fn got(g: AccessGuard<'_, &'static [u8]>) -> Option<P> {
        P::take(g.value())
    }
    fn show(b: &[u8]) -> Option<String> {
        P::take(b).map(|v| format!("{v:?}"))
    }
}

impl Plain for () {
    fn put(self, _: &mut Vec<u8>) {}
    fn take(b: &[u8]) -> Option<()> {
        b.is_empty().then_some(())
    }
}

impl Plain for bool {
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn take(b: &[u8]) -> Option<bool> {
        match b {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

impl Plain for u128 {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn take(b: &[u8]) -> Option<u128> {
        b.try_into().ok().map(u128::from_be_bytes)
    }
}

impl Plain for (i64, u64) {
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn take(b: &[u8]) -> Option<(i64, u64)> {
        let a: [u8; 16] = b.try_into().ok()?;
        let (x, y) = a.split_at(8);
        Some((
            i64::from_be_bytes(x.try_into().ok()?),
            u64::from_be_bytes(y.try_into().ok()?),
        ))
    }
}

/// An index table: its redb name, key type and value type.
pub(crate) struct Def<K, V> {
    name: &'static str,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Def<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Def<K, V> {}

impl<K: Key, V: Val> Def<K, V> {
    pub(crate) const fn new(name: &'static str) -> Self {
        Def {
            name,
            _types: PhantomData,
        }
    }

    /// The redb table behind it.
    pub(crate) const fn raw(self) -> Raw {
        TableDefinition::new(self.name)
    }

    /// Opens the table in a read or write transaction.
    pub(crate) fn open<'t, X: Txn>(self, txn: &'t X) -> R<Tab<K, V, X::Table<'t>>> {
        let t = txn.open_raw(self.raw()).map_err(|e| match e {
            // A typed table of index versions 1-4 (or a later layout) that
            // a rebuild has not replaced yet (Store::open retries it).
            redb::TableError::TableTypeMismatch { .. } => StoreError::Damaged {
                what: table_what(self.name),
                detail: "laid out by another Kith version: run reindex".into(),
            },
            e => e.into(),
        })?;
        Ok(Tab {
            t,
            name: self.name,
            _types: PhantomData,
        })
    }
}

/// A transaction an index table opens in.
pub(crate) trait Txn {
    type Table<'t>: ReadableTable<&'static [u8], &'static [u8]>
    where
        Self: 't;
    fn open_raw(&self, def: Raw) -> Result<Self::Table<'_>, redb::TableError>;
}

impl Txn for ReadTransaction {
    type Table<'t> = ReadOnlyTable<&'static [u8], &'static [u8]>;
    fn open_raw(&self, def: Raw) -> Result<Self::Table<'_>, redb::TableError> {
        self.open_table(def)
    }
}

impl Txn for WriteTransaction {
    type Table<'t> = Table<'t, &'static [u8], &'static [u8]>;
    fn open_raw(&self, def: Raw) -> Result<Self::Table<'_>, redb::TableError> {
        self.open_table(def)
    }
}

/// An open index table.
pub(crate) struct Tab<K, V, T> {
    t: T,
    name: &'static str,
    _types: PhantomData<fn() -> (K, V)>,
}

/// How errors name a table: "index table contacts" for `idx_contacts`.
fn table_what(table: &str) -> String {
    format!(
        "index table {}",
        table.strip_prefix("idx_").unwrap_or(table)
    )
}

fn damaged(table: &str, what: &str) -> StoreError {
    StoreError::Damaged {
        what: table_what(table),
        detail: format!("a {what} does not decode (run reindex to rebuild it)"),
    }
}

fn encoded<K: Key>(k: K::In<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    K::put(k, &mut out);
    out
}

fn bound<K: Key>(b: Bound<&K::In<'_>>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(encoded::<K>(*k)),
        Bound::Excluded(k) => Bound::Excluded(encoded::<K>(*k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<K: Key, V: Val, T: ReadableTable<&'static [u8], &'static [u8]>> Tab<K, V, T> {
    pub(crate) fn get(&self, k: K::In<'_>) -> R<Option<V::Got<'_>>> {
        match self.t.get(encoded::<K>(k).as_slice())? {
            None => Ok(None),
            Some(g) => V::got(g)
                .map(Some)
                .ok_or_else(|| damaged(self.name, "value")),
        }
    }

    /// Rows in key order (reversible).
    pub(crate) fn iter(&self) -> R<impl DoubleEndedIterator<Item = R<(K::Out, V::Got<'_>)>> + '_> {
        self.rows(self.t.iter()?)
    }

    /// Rows whose keys fall in `range`, in key order (reversible).
    pub(crate) fn range<'k>(
        &self,
        range: impl RangeBounds<K::In<'k>>,
    ) -> R<impl DoubleEndedIterator<Item = R<(K::Out, V::Got<'_>)>> + '_> {
        let lo = bound::<K>(range.start_bound());
        let hi = bound::<K>(range.end_bound());
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (as_slice(&lo), as_slice(&hi));
        self.rows(self.t.range::<&[u8]>(bounds)?)
    }

    fn rows<'s>(
        &'s self,
        range: redb::Range<'s, &'static [u8], &'static [u8]>,
    ) -> R<impl DoubleEndedIterator<Item = R<(K::Out, V::Got<'s>)>> + 's> {
        let name = self.name;
        Ok(range.map(move |row| {
            let (k, v) = row?;
            let k = K::decode(k.value()).ok_or_else(|| damaged(name, "key"))?;
            let v = V::got(v).ok_or_else(|| damaged(name, "value"))?;
            Ok((k, v))
        }))
    }

    pub(crate) fn len(&self) -> R<u64> {
        Ok(redb::ReadableTableMetadata::len(&self.t)?)
    }

    /// Every row as text (`key => value`), for comparing two indexes.
    pub(crate) fn dump(&self) -> R<Vec<String>> {
        let mut out = Vec::new();
        for row in self.t.iter()? {
            let (k, v) = row?;
            let key = K::decode(k.value()).ok_or_else(|| damaged(self.name, "key"))?;
            let value = V::show(v.value()).ok_or_else(|| damaged(self.name, "value"))?;
            out.push(format!("{key:?} => {value}"));
        }
        Ok(out)
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<K: Key, V: Val> Tab<K, V, Table<'_, &'static [u8], &'static [u8]>> {
    pub(crate) fn insert(&mut self, k: K::In<'_>, v: V::In<'_>) -> R<()> {
        let key = encoded::<K>(k);
        V::with_bytes(v, |value| self.t.insert(key.as_slice(), value).map(drop))?;
        Ok(())
    }

    /// Removes a row; whether it was there.
    pub(crate) fn remove(&mut self, k: K::In<'_>) -> R<bool> {
        Ok(self.t.remove(encoded::<K>(k).as_slice())?.is_some())
    }

    /// Removes every row (tests that damage the index).
    #[cfg(test)]
    pub(crate) fn clear_rows(&mut self) -> R<()> {
        self.t.retain(|_, _| false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    fn config() -> ProptestConfig {
        ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(256)
                .max(256),
        )
    }

    fn enc<K: Key>(k: K::In<'_>) -> Vec<u8> {
        encoded::<K>(k)
    }

    /// Strings with the bytes that matter to the escaping: NUL, 0xFF's
    /// neighbours as UTF-8 lead bytes, prefixes of each other.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a\\x00\\x01b\u{ff}é]{0,6}").expect("valid regex")
    }

    /// `a < b` exactly when `enc(a) < enc(b)`, and each decodes back.
    fn order_and_round_trip<K: Key>(
        a: &K::Out,
        b: &K::Out,
        ea: Vec<u8>,
        eb: Vec<u8>,
    ) -> Result<(), TestCaseError>
    where
        K::Out: Ord,
    {
        prop_assert_eq!(a.cmp(b), ea.cmp(&eb), "{:?} vs {:?}", a, b);
        let (da, db) = (K::decode(&ea), K::decode(&eb));
        prop_assert_eq!(da.as_ref(), Some(a));
        prop_assert_eq!(db.as_ref(), Some(b));
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn u128_keys_keep_order(a: u128, b: u128) {
            order_and_round_trip::<u128>(&a, &b, enc::<u128>(a), enc::<u128>(b))?;
        }

        #[test]
        fn string_keys_keep_order(a in text(), b in text()) {
            order_and_round_trip::<Str>(&a, &b, enc::<Str>(&a), enc::<Str>(&b))?;
        }

        #[test]
        fn name_keys_keep_order(a in (text(), any::<u128>()), b in (text(), any::<u128>())) {
            order_and_round_trip::<(Str, u128)>(
                &a,
                &b,
                enc::<(Str, u128)>((&a.0, a.1)),
                enc::<(Str, u128)>((&b.0, b.1)),
            )?;
        }

        #[test]
        fn search_keys_keep_order(
            a in (text(), any::<u8>(), any::<u128>()),
            b in (text(), any::<u8>(), any::<u128>()),
        ) {
            order_and_round_trip::<(Str, u8, u128)>(
                &a,
                &b,
                enc::<(Str, u8, u128)>((&a.0, a.1, a.2)),
                enc::<(Str, u8, u128)>((&b.0, b.1, b.2)),
            )?;
        }

        #[test]
        fn time_keys_keep_order(a: (i64, u128), b: (i64, u128)) {
            order_and_round_trip::<(i64, u128)>(
                &a, &b, enc::<(i64, u128)>(a), enc::<(i64, u128)>(b),
            )?;
        }

        #[test]
        fn contact_time_keys_keep_order(a: (u128, i64, u128), b: (u128, i64, u128)) {
            order_and_round_trip::<(u128, i64, u128)>(
                &a, &b, enc::<(u128, i64, u128)>(a), enc::<(u128, i64, u128)>(b),
            )?;
        }

        #[test]
        fn due_keys_keep_order(a: (i32, u128, u128), b: (i32, u128, u128)) {
            order_and_round_trip::<(i32, u128, u128)>(
                &a, &b, enc::<(i32, u128, u128)>(a), enc::<(i32, u128, u128)>(b),
            )?;
        }

        #[test]
        fn pair_keys_keep_order(a: (u128, u128), b: (u128, u128)) {
            order_and_round_trip::<(u128, u128)>(
                &a, &b, enc::<(u128, u128)>(a), enc::<(u128, u128)>(b),
            )?;
        }

        /// Small integers near the sign change and the extremes, where a
        /// wrong sign flip would show.
        #[test]
        fn signed_keys_keep_order_at_the_edges(
            a in prop_oneof![Just(i64::MIN), Just(-1i64), Just(0i64), Just(1i64), Just(i64::MAX), -3i64..3],
            b in prop_oneof![Just(i64::MIN), Just(-1i64), Just(0i64), Just(1i64), Just(i64::MAX), -3i64..3],
            c in prop_oneof![Just(i32::MIN), Just(-1i32), Just(0i32), Just(i32::MAX), -3i32..3],
            d in prop_oneof![Just(i32::MIN), Just(-1i32), Just(0i32), Just(i32::MAX), -3i32..3],
        ) {
            order_and_round_trip::<i64>(&a, &b, enc::<i64>(a), enc::<i64>(b))?;
            order_and_round_trip::<i32>(&c, &d, enc::<i32>(c), enc::<i32>(d))?;
        }

        /// Any bytes (a damaged or foreign row) decode to nothing or to the
        /// one key that encodes to exactly them; never a panic.
        #[test]
        fn arbitrary_bytes_decode_canonically_or_not_at_all(
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..48),
        ) {
            if let Some((s, kind, id)) = <(Str, u8, u128)>::decode(&b) {
                prop_assert_eq!(enc::<(Str, u8, u128)>((&s, kind, id)), b.clone());
            }
            if let Some(s) = Str::decode(&b) {
                prop_assert_eq!(enc::<Str>(&s), b.clone());
            }
            if let Some(k) = <(u128, i64, u128)>::decode(&b) {
                prop_assert_eq!(enc::<(u128, i64, u128)>(k), b.clone());
            }
            for (v, shown) in [
                (<()>::take(&b).map(|v| format!("{v:?}")), <() as Val>::show(&b)),
                (<bool>::take(&b).map(|v| format!("{v:?}")), <bool as Val>::show(&b)),
                (<u128 as Plain>::take(&b).map(|v| format!("{v:?}")), <u128 as Val>::show(&b)),
                (<(i64, u64)>::take(&b).map(|v| format!("{v:?}")), <(i64, u64) as Val>::show(&b)),
            ] {
                prop_assert_eq!(v, shown);
            }
        }

        /// Values round-trip (they need no order).
        #[test]
        fn values_round_trip(flag: bool, n: u128, stats: (i64, u64)) {
            fn back<P: Plain + PartialEq>(v: P) -> Option<P> {
                let mut out = Vec::new();
                Plain::put(v, &mut out);
                P::take(&out)
            }
            prop_assert_eq!(back(()), Some(()));
            prop_assert_eq!(back(flag), Some(flag));
            prop_assert_eq!(back(n), Some(n));
            prop_assert_eq!(back(stats), Some(stats));
        }
    }

    #[test]
    fn strings_sort_before_their_extensions_and_nul_is_escaped() {
        let keys = ["", "\0", "\0\0", "a", "a\0", "a\0b", "a\u{1}", "ab", "b"];
        let encoded: Vec<Vec<u8>> = keys.iter().map(|k| enc::<Str>(k)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        assert_eq!(enc::<Str>("a\0b"), b"a\0\xffb\0\0");
        // A key cut short, or with bytes after it, is not a key.
        assert_eq!(Str::decode(b"a\0"), None);
        assert_eq!(Str::decode(b"a\0\0x"), None);
        assert_eq!(Str::decode(b"a\0\x01\0\0"), None);
        assert_eq!(<(Str, u128)>::decode(b"a\0\0\x01"), None);
    }

    /// Moves one index table back to the typed layout of index versions 1-4
    /// (what an older Kith wrote): same rows, the old redb key/value types.
    fn to_typed<K: Key, V: Val, OK: redb::Key + 'static, OV: redb::Value + 'static, T>(
        txn: &WriteTransaction,
        def: Def<K, V>,
        own: impl for<'g> Fn(V::Got<'g>) -> T,
        put: impl Fn(&mut Table<'_, OK, OV>, K::Out, T) -> Result<(), redb::StorageError>,
    ) {
        let rows: Vec<(K::Out, T)> = {
            let t = def.open(txn).unwrap();
            t.iter()
                .unwrap()
                .map(|r| r.map(|(k, v)| (k, own(v))).unwrap())
                .collect()
        };
        assert!(txn.delete_table(def.raw()).unwrap());
        let mut t = txn
            .open_table(TableDefinition::<OK, OV>::new(def.name))
            .unwrap();
        for (k, v) in rows {
            put(&mut t, k, v).unwrap();
        }
    }

    /// A store whose index an older Kith wrote (typed tables, index version
    /// 4) opens, is rebuilt into byte tables, and answers every query as
    /// before; the typed tables are gone.
    #[test]
    fn a_store_with_the_typed_index_of_version_4_is_rebuilt_and_answers_the_same() {
        use crate::index::*;
        use crate::{
            ContactQuery, ContactSort, FollowUpFilter, NewContact, NewFollowUp, NewGoal,
            NewInteraction, NewProject, ParticipantRef, Store, TimelineQuery,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let ana = s.add_contact(NewContact::named("Ana Lima")).unwrap();
        let twin = s.add_contact(NewContact::named("ana  lima")).unwrap();
        let bo = s.add_contact(NewContact::named("Bo Søren")).unwrap();
        s.merge_contacts(ana.id, twin.id).unwrap();
        let project = s
            .add_project(NewProject {
                name: "Audit".into(),
                description: String::new(),
                status: crate::model::ProjectStatus::Active,
            })
            .unwrap();
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 3, d);
        for (n, (who, at_ms)) in [
            (twin.id, -86_400_000i64),
            (ana.id, 1_700_000_000_000),
            (bo.id, 1_700_000_500_000),
            (bo.id, 1_600_000_000_000),
        ]
        .into_iter()
        .enumerate()
        {
            let logged = s
                .log_interaction(NewInteraction {
                    at_ms: Some(at_ms),
                    summary: format!("rota review {n}"),
                    notes: "the sørensen audit".into(),
                    participants: vec![ParticipantRef::Id(who)],
                    project: (n == 1).then_some(project.id),
                    follow_ups: vec![
                        NewFollowUp {
                            text: format!("send slides {n}"),
                            due: day(n as u32 + 1),
                        },
                        NewFollowUp {
                            text: "call back".into(),
                            due: None,
                        },
                    ],
                    ..NewInteraction::default()
                })
                .unwrap();
            if n == 3 {
                s.delete_interaction(logged.id).unwrap();
            }
        }
        s.add_goal(NewGoal {
            title: "Publish".into(),
            priority: 1,
            status: crate::model::GoalStatus::Active,
            contacts: [twin.id, bo.id].into(),
        })
        .unwrap();
        let answers = |s: &Store| {
            let by = |sort| ContactQuery {
                sort,
                include_archived: true,
                ..ContactQuery::default()
            };
            let all = TimelineQuery {
                include_deleted: true,
                ..TimelineQuery::default()
            };
            format!(
                "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
                s.contacts(&by(ContactSort::Name)).unwrap(),
                s.contacts(&by(ContactSort::LastInteraction)).unwrap(),
                s.contacts_named("ANA LIMA").unwrap(),
                s.timeline(&all).unwrap(),
                s.timeline(&TimelineQuery {
                    contact: Some(bo.id),
                    ..all.clone()
                })
                .unwrap(),
                s.search("ana", 10).unwrap(),
                s.search("soren rota", 10).unwrap(),
                s.follow_ups(FollowUpFilter::Open).unwrap(),
                s.follow_ups(FollowUpFilter::DueBy(day(2).unwrap()))
                    .unwrap(),
                s.all_contact_stats().unwrap(),
                (s.all_goals().unwrap(), s.all_projects().unwrap()),
                s.insights_records().unwrap(),
            )
        };
        let before = answers(&s);
        let dump = s.index_dump().unwrap();
        // Every table holds rows to carry over (but the calendar's, which
        // needs an event source).
        assert!(
            dump.iter()
                .all(|(table, rows)| *table == "event_logs" || !rows.is_empty()),
            "{dump:?}"
        );
        s.close().unwrap();

        let path = dir.path().join(crate::store::STORE_FILE);
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            let bytes = |g: AccessGuard<'_, &'static [u8]>| g.value().to_vec();
            type T<'t, K, V> = Table<'t, K, V>;
            for def in [
                CONTACTS,
                INTERACTIONS,
                PROJECTS,
                GOALS,
                RAW_CONTACTS,
                INTERACTION_REFS,
                RAW_GOALS,
            ] {
                to_typed(&txn, def, bytes, |t: &mut T<'_, u128, &[u8]>, k, v| {
                    t.insert(k, v.as_slice()).map(drop)
                });
            }
            to_typed(&txn, SETTINGS, bytes, |t: &mut T<'_, &str, &[u8]>, k, v| {
                t.insert(k.as_str(), v.as_slice()).map(drop)
            });
            to_typed(
                &txn,
                CONTACTS_BY_NAME,
                |v| v,
                |t: &mut T<'_, (&str, u128), ()>, (n, id), v| {
                    t.insert((n.as_str(), id), v).map(drop)
                },
            );
            to_typed(
                &txn,
                CONTACT_STATS,
                |v| v,
                |t: &mut T<'_, u128, (i64, u64)>, k, v| t.insert(k, v).map(drop),
            );
            to_typed(
                &txn,
                BY_TIME,
                |v| v,
                |t: &mut T<'_, (i64, u128), bool>, k, v| t.insert(k, v).map(drop),
            );
            to_typed(
                &txn,
                BY_CONTACT,
                |v| v,
                |t: &mut T<'_, (u128, i64, u128), bool>, k, v| t.insert(k, v).map(drop),
            );
            to_typed(
                &txn,
                FOLLOWUPS,
                |v| v,
                |t: &mut T<'_, (i32, u128, u128), ()>, k, v| t.insert(k, v).map(drop),
            );
            to_typed(
                &txn,
                SEARCH,
                |v| v,
                |t: &mut T<'_, (&str, u8, u128), ()>, (w, kind, id), v| {
                    t.insert((w.as_str(), kind, id), v).map(drop)
                },
            );
            for def in [MERGE_PTRS, SURVIVORS] {
                to_typed(
                    &txn,
                    def,
                    |v| v,
                    |t: &mut T<'_, u128, u128>, k, v| t.insert(k, v).map(drop),
                );
            }
            for def in [GROUPS, REFS_BY_CONTACT] {
                to_typed(
                    &txn,
                    def,
                    |v| v,
                    |t: &mut T<'_, (u128, u128), ()>, k, v| t.insert(k, v).map(drop),
                );
            }
            to_typed(
                &txn,
                EVENT_LOGS,
                |v| v,
                |t: &mut T<'_, u128, ()>, k, v| t.insert(k, v).map(drop),
            );
            let meta: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
            txn.open_table(meta)
                .unwrap()
                .insert("index", b"4".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        // The old layout is really there: the new code cannot read it as is.
        {
            let db = redb::Database::open(&path).unwrap();
            let r = db.begin_read().unwrap();
            match CONTACTS.open(&r) {
                Err(e @ StoreError::Damaged { .. }) => {
                    assert!(e.to_string().contains("run reindex"), "{e}");
                }
                Err(e) => panic!("expected Damaged, got {e:?}"),
                Ok(_) => panic!("the typed table opened as bytes"),
            }
            let typed: TableDefinition<'_, (&str, u8, u128), ()> =
                TableDefinition::new("idx_search");
            assert!(r.open_table(typed).unwrap().len().unwrap() > 0);
        }

        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.index_dump().unwrap(), dump);
        assert_eq!(answers(&s), before);
        s.close().unwrap();
        let db = redb::Database::open(&path).unwrap();
        let r = db.begin_read().unwrap();
        let typed: TableDefinition<'_, (&str, u8, u128), ()> = TableDefinition::new("idx_search");
        assert!(matches!(
            r.open_table(typed),
            Err(redb::TableError::TableTypeMismatch { .. })
        ));
        let meta: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
        let version = r
            .open_table(meta)
            .unwrap()
            .get("index")
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        assert_eq!(version, crate::index::VERSION.to_string().into_bytes());
    }
}

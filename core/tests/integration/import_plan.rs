//! Import planning against existing contacts: idempotent re-import, likely
//! duplicates with a suggested merge target.

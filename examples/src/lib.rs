//! kith-examples: runnable examples of Kith's Rust API (see the `examples/` files).

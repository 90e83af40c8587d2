//! kith-relay: the self-hostable, blind store-and-forward relay.

fn main() -> anyhow::Result<()> {
    Ok(())
}

//! kith: the command-line tool.

fn main() -> anyhow::Result<()> {
    Ok(())
}

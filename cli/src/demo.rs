//! `kith demo`: placeholder until the sample generator lands.

use std::path::Path;

use crate::args::DemoArgs;
use crate::error::CliResult;
use crate::render::Out;
use crate::when::Clock;

pub(crate) fn run(
    _args: DemoArgs,
    _data: Option<&Path>,
    _clock: &Clock,
    _out: &mut Out,
) -> CliResult<()> {
    Ok(())
}

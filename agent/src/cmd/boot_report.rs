use super::{BootReportArgs, Exit};

pub fn run(_args: BootReportArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

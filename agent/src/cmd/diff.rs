use super::{DiffArgs, Exit};

pub fn run(_args: DiffArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

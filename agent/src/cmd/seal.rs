use super::{SealArgs, Exit};

pub fn run(_args: SealArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

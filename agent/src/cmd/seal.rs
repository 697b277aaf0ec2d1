use super::{Exit, SealArgs};

pub fn run(_args: SealArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

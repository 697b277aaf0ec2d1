use super::{Exit, KeygenArgs};

pub fn run(_args: KeygenArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

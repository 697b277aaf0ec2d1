use super::{Exit, SignArgs};

pub fn run(_args: SignArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

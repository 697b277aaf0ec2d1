use super::{SignArgs, Exit};

pub fn run(_args: SignArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

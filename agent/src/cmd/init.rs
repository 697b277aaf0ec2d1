use super::{InitArgs, Exit};

pub fn run(_args: InitArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

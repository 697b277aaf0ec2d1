use super::{Exit, InitArgs};

pub fn run(_args: InitArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

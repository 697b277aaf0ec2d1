use super::{Exit, VerifyArgs};

pub fn run(_args: VerifyArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}

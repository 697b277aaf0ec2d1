//! A recording [`ApplyHost`] for tests: one ordered list of typed operations, a small user
//! database, and failures injected by predicate. Files themselves are written for real beneath
//! a temp dir; only chown and sethostname are recorded instead of done.
use std::collections::BTreeMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ApplyHost;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    SetHostname(String),
    UserId(String),
    GroupId(String),
    Chown { path: PathBuf, uid: u32, gid: u32 },
}

type Rule = Box<dyn Fn(&Op) -> Option<i32> + Send + Sync>;

#[derive(Default)]
pub struct FakeApplyHost {
    ops: Mutex<Vec<Op>>,
    users: BTreeMap<String, u32>,
    groups: BTreeMap<String, u32>,
    rules: Mutex<Vec<Rule>>,
}

impl FakeApplyHost {
    /// Knows user and group `app` (1000) and `root` (0).
    pub fn new() -> Self {
        let db = BTreeMap::from([("root".to_string(), 0), ("app".to_string(), 1000)]);
        FakeApplyHost {
            users: db.clone(),
            groups: db,
            ..Default::default()
        }
    }

    /// Fail every operation for which `rule` gives an errno.
    pub fn fail_when(&self, rule: impl Fn(&Op) -> Option<i32> + Send + Sync + 'static) {
        self.rules.lock().unwrap().push(Box::new(rule));
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    fn record(&self, op: Op) -> io::Result<()> {
        let errno = self.rules.lock().unwrap().iter().find_map(|r| r(&op));
        self.ops.lock().unwrap().push(op);
        match errno {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

impl ApplyHost for FakeApplyHost {
    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.record(Op::SetHostname(name.to_string()))
    }

    fn user_id(&self, name: &str) -> io::Result<Option<u32>> {
        self.record(Op::UserId(name.to_string()))?;
        Ok(self.users.get(name).copied())
    }

    fn group_id(&self, name: &str) -> io::Result<Option<u32>> {
        self.record(Op::GroupId(name.to_string()))?;
        Ok(self.groups.get(name).copied())
    }

    fn chown(&self, _file: BorrowedFd<'_>, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.record(Op::Chown {
            path: path.to_path_buf(),
            uid,
            gid,
        })
    }
}

//! A local file (`pyre boot --config FILE`, tests). A missing file given on purpose is an
//! error; an empty one is "no config".
use std::path::PathBuf;

use super::{read_capped, MetadataProvider, ProviderError, ProviderKind, Settings};

pub struct File {
    path: PathBuf,
    cap: u64,
}

impl File {
    pub fn new(settings: &Settings) -> Result<File, ProviderError> {
        let path = settings.config_file.clone().ok_or_else(|| {
            ProviderError::Setup("provider file needs a path (--config FILE)".into())
        })?;
        Ok(File {
            path,
            cap: settings.max_body,
        })
    }
}

impl MetadataProvider for File {
    fn kind(&self) -> ProviderKind {
        ProviderKind::File
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        let b = read_capped(&self.path, self.cap)?;
        Ok(Some(b).filter(|b| !b.iter().all(u8::is_ascii_whitespace)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        let s = Settings {
            config_file: Some(p.clone()),
            ..Settings::default()
        };
        let f = File::new(&s).unwrap();
        assert!(f.config().unwrap_err().to_string().starts_with("reading "));
        std::fs::write(&p, "").unwrap();
        assert_eq!(f.config().unwrap(), None);
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(f.config().unwrap().as_deref(), Some(b"{}".as_slice()));
        assert!(File::new(&Settings::default()).is_err());
    }
}

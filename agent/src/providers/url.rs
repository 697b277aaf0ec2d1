//! A registry: the config at `pyre.config.url=`. https, trusting the system CA bundle plus the
//! CAs baked at `/etc/pyre/ca/*.pem`; plain http only when the image policy allows it. The
//! query string is kept out of logs (a pre-signed URL carries its credential there).
use super::fetch::Fetcher;
use super::http::Request;
use super::{body_or_none, MetadataProvider, ProviderError, ProviderKind, Settings};

pub struct Url {
    fetcher: Fetcher,
    url: String,
}

impl Url {
    pub fn new(fetcher: Fetcher, settings: &Settings) -> Result<Url, ProviderError> {
        let url = settings.config_url.clone().ok_or_else(|| {
            ProviderError::Setup("provider url needs pyre.config.url= (or --config-url)".into())
        })?;
        if url.starts_with("http://") && !settings.allow_http {
            return Err(ProviderError::Cmdline {
                key: "pyre.config.url",
                value: url,
                why: "plain http is not allowed by the image policy",
            });
        }
        Ok(Url { fetcher, url })
    }
}

impl MetadataProvider for Url {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Url
    }

    fn config(&self) -> Result<Option<Vec<u8>>, ProviderError> {
        let req = Request::get(self.url.clone()).secret_query();
        let resp = self.fetcher.send(&req)?;
        body_or_none(&req, resp)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::testing::{ok, rig};

    #[test]
    fn fetches_and_hides_the_query() {
        let r = rig(Duration::from_secs(5), |_, _| ok("cfg"));
        let s = Settings {
            config_url: Some("https://r.example/c?sig=s3cret".into()),
            ..Settings::default()
        };
        let u = Url::new(r.fetcher.clone(), &s).unwrap();
        assert_eq!(u.config().unwrap().as_deref(), Some(b"cfg".as_slice()));
        assert_eq!(
            r.script.seen.lock().unwrap()[0].shown,
            "https://r.example/c?…"
        );
    }

    #[test]
    fn plain_http_needs_the_policy() {
        let r = rig(Duration::from_secs(5), |_, _| ok("cfg"));
        let mut s = Settings {
            config_url: Some("http://r.example/c".into()),
            ..Settings::default()
        };
        let e = Url::new(r.fetcher.clone(), &s).err().unwrap();
        assert!(e.to_string().contains("plain http is not allowed"), "{e}");
        s.allow_http = true;
        assert!(Url::new(r.fetcher.clone(), &s).is_ok());
        s.config_url = None;
        assert!(Url::new(r.fetcher.clone(), &s).is_err());
    }
}

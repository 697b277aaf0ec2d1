//! Faults the fake metadata server injects, written as short specs so a test, the CLI
//! (`--fault`) and the control endpoint share one grammar:
//!
//! `KIND[=ARG][*TIMES][@SCOPE]` — e.g. `503*3`, `429=2*1`, `delay=1500`, `trickle=20`,
//! `token-expiry`, `reset*2`, `truncate*1`, `oversize=2097152`, `redirect=http://localhost:1/x`,
//! `content-type=text/html`, `403@token`. Without `*TIMES` a fault stays (except
//! `token-expiry`, once). Scope: the config request (default), `@token` (AWS token PUT) or
//! `@any` request.
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long before sending the status line.
    Delay(Duration),
    /// Send the body in 8-byte pieces with this pause between them.
    Trickle(Duration),
    /// Answer with this status (5xx, 403, 404, …) and an empty body.
    Status(u16),
    /// 429, with `Retry-After: N` when given.
    TooMany(Option<u64>),
    /// AWS: refuse the current token once (401), as if it expired mid-boot.
    TokenExpiry,
    /// Read the request, then reset the connection (RST) without answering.
    Reset,
    /// Announce a longer Content-Length than the body sent, then close.
    Truncate,
    /// A chunked body of this many bytes (no Content-Length: the client must cap while reading).
    Oversize(usize),
    /// 302 to this URL.
    Redirect(String),
    /// Serve the body with this Content-Type.
    ContentType(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Config,
    Token,
    Any,
    /// Requests that are neither (identity documents …): only `@any` faults reach them.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub fault: Fault,
    /// `None`: every matching request.
    pub times: Option<u32>,
    pub scope: Scope,
}

fn ms(arg: Option<&str>, spec: &str) -> Result<Duration, String> {
    arg.and_then(|a| a.parse().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{spec}: needs =MILLISECONDS"))
}

impl Injected {
    pub fn parse(spec: &str) -> Result<Injected, String> {
        let spec = spec.trim();
        let (rest, scope) = match spec.rsplit_once('@') {
            Some((r, "token")) => (r, Scope::Token),
            Some((r, "any")) => (r, Scope::Any),
            Some((r, "config")) => (r, Scope::Config),
            Some((_, s)) if !s.contains('/') => return Err(format!("{spec}: unknown scope @{s}")),
            _ => (spec, Scope::Config),
        };
        let (rest, times) = match rest.rsplit_once('*') {
            Some((r, n)) => (
                r,
                Some(
                    n.parse()
                        .map_err(|_| format!("{spec}: *TIMES must be a number"))?,
                ),
            ),
            None => (rest, None),
        };
        let (kind, arg) = match rest.split_once('=') {
            Some((k, a)) => (k, Some(a)),
            None => (rest, None),
        };
        let fault = match kind {
            "delay" => Fault::Delay(ms(arg, spec)?),
            "trickle" => Fault::Trickle(ms(arg, spec)?),
            "429" => Fault::TooMany(match arg {
                Some(a) => Some(a.parse().map_err(|_| format!("{spec}: bad Retry-After"))?),
                None => None,
            }),
            "token-expiry" => Fault::TokenExpiry,
            "reset" => Fault::Reset,
            "truncate" => Fault::Truncate,
            "oversize" => Fault::Oversize(
                arg.and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("{spec}: needs =BYTES"))?,
            ),
            "redirect" => Fault::Redirect(
                arg.ok_or_else(|| format!("{spec}: needs =URL"))?
                    .to_string(),
            ),
            "content-type" => Fault::ContentType(
                arg.ok_or_else(|| format!("{spec}: needs =TYPE"))?
                    .to_string(),
            ),
            k => match k.parse::<u16>() {
                Ok(code) if (400..600).contains(&code) => Fault::Status(code),
                _ => return Err(format!("{spec}: unknown fault {k:?}")),
            },
        };
        let times = match (&fault, times) {
            (Fault::TokenExpiry, None) => Some(1),
            (_, t) => t,
        };
        Ok(Injected {
            fault,
            times,
            scope,
        })
    }

    pub fn applies(&self, scope: Scope) -> bool {
        self.times != Some(0) && (self.scope == Scope::Any || self.scope == scope)
    }
}

/// What the faults due on one request do to its answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub delay: Option<Duration>,
    pub trickle: Option<Duration>,
    /// A fault that replaces the answer (status, 429, reset, redirect, token expiry).
    pub replace: Option<Fault>,
    pub truncate: bool,
    pub oversize: Option<usize>,
    pub content_type: Option<String>,
}

/// Take the faults due for a request in `scope`, counting each one used down.
pub fn plan(faults: &mut [Injected], scope: Scope) -> Plan {
    let mut p = Plan::default();
    for f in faults.iter_mut().filter(|f| f.applies(scope)) {
        let used = match &f.fault {
            Fault::Delay(d) => p.delay.replace(*d).is_none(),
            Fault::Trickle(d) => p.trickle.replace(*d).is_none(),
            Fault::Truncate => !std::mem::replace(&mut p.truncate, true),
            Fault::Oversize(n) => p.oversize.replace(*n).is_none(),
            Fault::ContentType(t) => p.content_type.replace(t.clone()).is_none(),
            other if p.replace.is_none() => {
                p.replace = Some(other.clone());
                true
            }
            _ => false,
        };
        if used {
            if let Some(t) = f.times.as_mut() {
                *t -= 1;
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let p = |s| Injected::parse(s).unwrap();
        assert_eq!(p("503*3").fault, Fault::Status(503));
        assert_eq!(p("503*3").times, Some(3));
        assert_eq!(p("429=2").fault, Fault::TooMany(Some(2)));
        assert_eq!(
            p("delay=1500").fault,
            Fault::Delay(Duration::from_millis(1500))
        );
        assert_eq!(p("token-expiry").times, Some(1));
        assert_eq!(p("403@token").scope, Scope::Token);
        assert_eq!(
            p("redirect=http://localhost:1/x").fault,
            Fault::Redirect("http://localhost:1/x".into())
        );
        for bad in [
            "",
            "teapot",
            "delay",
            "200",
            "503*x",
            "403@nowhere",
            "oversize",
        ] {
            assert!(Injected::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_down_and_combines() {
        let mut faults = vec![
            Injected::parse("503*2").unwrap(),
            Injected::parse("delay=10").unwrap(),
            Injected::parse("reset*1@token").unwrap(),
        ];
        let a = plan(&mut faults, Scope::Config);
        assert_eq!(a.replace, Some(Fault::Status(503)));
        assert_eq!(a.delay, Some(Duration::from_millis(10)));
        plan(&mut faults, Scope::Config);
        assert_eq!(plan(&mut faults, Scope::Config).replace, None);
        assert_eq!(plan(&mut faults, Scope::Token).replace, Some(Fault::Reset));
        assert_eq!(plan(&mut faults, Scope::Token).replace, None);
    }
}

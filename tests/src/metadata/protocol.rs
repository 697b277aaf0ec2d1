//! The four clouds' metadata protocols, as far as pyre uses them, on one port (their paths do
//! not overlap): AWS IMDSv2 (token PUT with a TTL header, token checked on every GET), GCE
//! (`Metadata-Flavor: Google` both ways), Azure IMDS (`Metadata: true`, user data base64),
//! OpenStack (`/openstack/latest/…`), plus `/config.json` for the `url` provider.
use base64::Engine;

use super::wire::{HttpRequest, Reply};
use super::State;

pub const INSTANCE_ID: &str = "i-0fake0pyre0000001";
pub const REGION: &str = "eu-west-1";
pub const ZONE: &str = "eu-west-1b";
pub const INSTANCE_TYPE: &str = "t3.micro";

/// Which kind of request this is, for fault scoping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Config,
    Other,
}

pub fn kind(req: &HttpRequest) -> Kind {
    match (req.method.as_str(), req.path()) {
        ("PUT", "/latest/api/token") => Kind::Token,
        (
            "GET",
            "/latest/user-data"
            | "/computeMetadata/v1/instance/attributes/pyre-config"
            | "/metadata/instance/compute/userData"
            | "/openstack/latest/user_data"
            | "/config.json",
        ) => Kind::Config,
        _ => Kind::Other,
    }
}

fn config_or_404(state: &State, content_type: &str) -> Reply {
    match state.config() {
        Some(c) => Reply::new(200, content_type, c),
        None => Reply::new(404, "text/html", "<html>404 - Not Found</html>"),
    }
}

pub fn answer(state: &State, req: &HttpRequest) -> Reply {
    let path = req.path();
    if path.starts_with("/latest/") || path.starts_with("/2021-01-03/") {
        aws(state, req)
    } else if path.starts_with("/computeMetadata/") {
        gcp(state, req)
    } else if path.starts_with("/metadata/") {
        azure(state, req)
    } else if path.starts_with("/openstack/") {
        openstack(state, req)
    } else if path == "/config.json" && req.method == "GET" {
        config_or_404(state, "application/json")
    } else {
        Reply::empty(404)
    }
}

fn aws(state: &State, req: &HttpRequest) -> Reply {
    if req.method == "PUT" && req.path() == "/latest/api/token" {
        let ttl = req.header("x-aws-ec2-metadata-token-ttl-seconds");
        return match ttl.and_then(|t| t.parse::<u32>().ok()) {
            Some(t) if (1..=21600).contains(&t) => Reply::new(200, "text/plain", state.new_token())
                .header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", &t.to_string()),
            _ => Reply::empty(400),
        };
    }
    if req.method != "GET" {
        return Reply::empty(405);
    }
    // IMDSv2 required: no or unknown token is 401.
    if !req
        .header("x-aws-ec2-metadata-token")
        .is_some_and(|t| state.token_valid(t))
    {
        return Reply::empty(401);
    }
    // afterburn asks a dated API version (the bench runs it against this server): same answers.
    let path = req.path().replacen("/2021-01-03/", "/latest/", 1);
    match path.as_str() {
        "/latest/user-data" => config_or_404(state, "application/octet-stream"),
        "/latest/meta-data/instance-id" => Reply::new(200, "text/plain", INSTANCE_ID),
        "/latest/meta-data/instance-type" => Reply::new(200, "text/plain", INSTANCE_TYPE),
        "/latest/meta-data/local-ipv4" => Reply::new(200, "text/plain", "10.0.2.15"),
        "/latest/meta-data/placement/availability-zone" => Reply::new(200, "text/plain", ZONE),
        "/latest/meta-data/hostname" => {
            Reply::new(200, "text/plain", "ip-10-0-2-15.eu-west-1.compute.internal")
        }
        "/latest/dynamic/instance-identity/document" => Reply::new(
            200,
            "text/plain",
            format!(
                r#"{{"accountId":"000000000000","architecture":"x86_64","imageId":"ami-0pyre",
"instanceId":"{INSTANCE_ID}","instanceType":"{INSTANCE_TYPE}","privateIp":"10.0.2.15",
"region":"{REGION}","availabilityZone":"{ZONE}","version":"2017-09-30"}}"#
            ),
        ),
        _ => Reply::empty(404),
    }
}

fn gcp(state: &State, req: &HttpRequest) -> Reply {
    if req.header("metadata-flavor") != Some("Google") {
        return Reply::new(403, "text/html", "Missing Metadata-Flavor:Google header.");
    }
    match req.path() {
        "/computeMetadata/v1/instance/attributes/pyre-config" => {
            config_or_404(state, "application/text")
        }
        "/computeMetadata/v1/instance/" if req.query().contains("recursive=true") => Reply::new(
            200,
            "application/json",
            r#"{"id":4520031799277581759,"zone":"projects/123/zones/europe-west1-b",
"machineType":"projects/123/machineTypes/e2-small","hostname":"fake.c.pyre.internal"}"#,
        ),
        _ => Reply::empty(404),
    }
}

fn azure(state: &State, req: &HttpRequest) -> Reply {
    if req.header("metadata") != Some("true") {
        return Reply::new(400, "application/json", r#"{"error":"Bad request"}"#);
    }
    if !req.query().contains("api-version=") {
        return Reply::new(
            400,
            "application/json",
            r#"{"error":"Missing api-version"}"#,
        );
    }
    match req.path() {
        // Azure answers 200 with an empty body when the VM has no user data.
        "/metadata/instance/compute/userData" => {
            let b64 = state
                .config()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
                .unwrap_or_default();
            Reply::new(200, "text/plain; charset=utf-8", b64)
        }
        "/metadata/instance" => Reply::new(
            200,
            "application/json; charset=utf-8",
            r#"{"compute":{"vmId":"02aab8a4-74ef-476e-8182-f6d2ba4166a6","location":"westeurope",
"zone":"2","vmSize":"Standard_B1s","name":"fake-vm"},"network":{"interface":[]}}"#,
        ),
        _ => Reply::empty(404),
    }
}

fn openstack(state: &State, req: &HttpRequest) -> Reply {
    match req.path() {
        "/openstack/latest/user_data" => config_or_404(state, "application/octet-stream"),
        "/openstack/latest/meta_data.json" => Reply::new(
            200,
            "application/json",
            r#"{"uuid":"83679162-1378-4288-a2d4-70e13ec132aa","availability_zone":"nova",
"hostname":"fake.novalocal","name":"fake"}"#,
        ),
        _ => Reply::empty(404),
    }
}

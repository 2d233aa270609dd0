//! Several server processes on one PostgreSQL database and one object store, as behind a
//! load balancer: the PostgreSQL the tests run against (`ANJIAN_TEST_POSTGRES`), or else a
//! throwaway one started for the test by `scripts/postgres`; the object store the tests
//! run against (`ANJIAN_TEST_S3`), or else a throwaway one started by `scripts/s3`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anjian_sync_server::testing;

/// A PostgreSQL server for a test.
pub struct Postgres {
    /// A URL of one of its databases.
    pub url: String,
    /// The throwaway server's script, stopped when this is dropped.
    script: Option<Child>,
}

impl Postgres {
    /// The PostgreSQL the tests run against, or a throwaway one.
    pub fn start() -> Postgres {
        if let Ok(url) = std::env::var(testing::POSTGRES_VARIABLE) {
            return Postgres { url, script: None };
        }
        let (url, script) = script_url("postgres", "postgres://");
        Postgres {
            url,
            script: Some(script),
        }
    }

    /// A database of its own for the data folder `data` (made if new).
    pub fn database(&self, data: &Path) -> String {
        testing::database_on(&self.url, data)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(self.script.take());
    }
}

/// An S3-compatible object store for a test.
pub struct ObjectStore {
    /// Its endpoint, `http://ADDRESS`.
    pub endpoint: String,
    /// The bucket blobs go to.
    pub bucket: String,
    /// The throwaway server's script, stopped when this is dropped.
    script: Option<Child>,
}

impl ObjectStore {
    /// The object store the tests run against, or a throwaway one.
    pub fn start() -> ObjectStore {
        if let Ok(endpoint) = std::env::var(testing::S3_VARIABLE) {
            let bucket =
                std::env::var(testing::S3_BUCKET_VARIABLE).unwrap_or_else(|_| "anjian".into());
            return ObjectStore {
                endpoint,
                bucket,
                script: None,
            };
        }
        let (endpoint, script) = script_url("s3", "http://");
        ObjectStore {
            endpoint,
            bucket: "anjian".into(),
            script: Some(script),
        }
    }

    /// The blob store of the servers named `name`: a prefix of its own in the bucket.
    /// A throwaway store lets anyone in, and this process holds no keys for it: requests
    /// to it go unsigned.
    pub fn blobs(&self, name: &Path) -> String {
        let location = testing::blobs_on(&self.endpoint, &self.bucket, name);
        if self.script.is_some() {
            format!("{location}&anonymous=true")
        } else {
            location
        }
    }
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        stop(self.script.take());
    }
}

/// Runs `scripts/NAME url` and reads the URL it prints first (starting with `scheme`);
/// the script keeps its server until it is stopped.
fn script_url(name: &str, scheme: &str) -> (String, Child) {
    let script = workspace().join("scripts").join(name);
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("url")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("scripts/{name} starts: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let url = BufReader::new(stdout)
        .lines()
        .next()
        .and_then(Result::ok)
        .filter(|line| line.starts_with(scheme))
        .unwrap_or_else(|| panic!("scripts/{name} printed no URL"));
    (url, child)
}

/// Stops a script started by `script_url`: on SIGTERM it stops its server and removes the
/// server's data.
fn stop(script: Option<Child>) {
    if let Some(mut child) = script {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests crate")
        .to_owned()
}

/// HAProxy from the system's packages in front of server nodes, balancing every request
/// round-robin with no stickiness, as a province would run the nodes.
pub struct Balancer {
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    child: Child,
    _config: tempfile::TempDir,
}

impl Balancer {
    /// Starts HAProxy on a free loopback port in front of `nodes`.
    pub fn start(nodes: &[std::net::SocketAddr]) -> Balancer {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let folder = tempfile::tempdir().expect("temp dir");
        let config = folder.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(addr, nodes)).expect("config written");
        let balancer = Balancer {
            addr,
            child: Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("haproxy starts (scripts/install-browser installs it)"),
            _config: folder,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return balancer;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("haproxy does not listen on {addr}");
    }

    /// `http://ADDRESS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scripts/haproxy.cfg` for `nodes` behind `listen` (as `scripts/cluster` fills it in).
pub fn haproxy_config(listen: std::net::SocketAddr, nodes: &[std::net::SocketAddr]) -> String {
    let servers: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| format!("    server node{i} {node}"))
        .collect();
    include_str!("../../scripts/haproxy.cfg")
        .replace("@LISTEN@", &listen.to_string())
        .replace("@SERVERS@", &servers.join("\n"))
}

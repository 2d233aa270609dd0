//! Several server processes on one PostgreSQL database, as behind a load balancer: the
//! PostgreSQL the tests run against (`ANJIAN_TEST_POSTGRES`), or else a throwaway one
//! started for the test by `scripts/postgres`, and server nodes on it.

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
        let script = workspace().join("scripts").join("postgres");
        let mut child = Command::new("bash")
            .arg(&script)
            .arg("url")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("scripts/postgres starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let url = BufReader::new(stdout)
            .lines()
            .next()
            .and_then(Result::ok)
            .filter(|line| line.starts_with("postgres://"))
            .unwrap_or_else(|| panic!("scripts/postgres printed no URL"));
        Postgres {
            url,
            script: Some(child),
        }
    }

    /// A database of its own for the data folder `data` (made if new).
    pub fn database(&self, data: &Path) -> String {
        testing::database_on(&self.url, data)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.script.take() {
            // SIGTERM: the script stops the server and removes its data.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
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

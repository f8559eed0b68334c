//! A private nats-server with JetStream: listens on a loopback port, stores under the
//! test's directory, and takes the accounts block the test gives it (normally the output
//! of `vtrail-collect nats-config`). It can be stopped and started again on the same port
//! and store, which is how the tests cut the link.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct Nats {
    dir: PathBuf,
    /// The address it listens on.
    pub host: String,
    pub port: u16,
    child: Option<Child>,
}

fn server_bin() -> PathBuf {
    let bin = PathBuf::from("/usr/sbin/nats-server");
    assert!(bin.exists(), "nats-server not found: the fleet tests need it (`cargo xtask test` installs the Debian package nats-server)");
    bin
}

impl Nats {
    /// Starts a server under `parent/nats-<tag>` with `accounts` (NATS config text: an
    /// `accounts { ... }` block, or empty for no authentication).
    pub fn start(parent: &Path, tag: &str, accounts: &str) -> Self {
        Self::start_on(parent, tag, accounts, "127.0.0.1")
    }

    /// As [`Nats::start`], listening on `host` (an address of this namespace).
    pub fn start_on(parent: &Path, tag: &str, accounts: &str, host: &str) -> Self {
        let dir = parent.join(format!("nats-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = super::free_port();
        std::fs::write(
            dir.join("nats.conf"),
            format!(
                "listen: {host}:{port}\nhttp: 0\njetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 4GB\n}}\n{accounts}\n",
                dir.join("js").display()
            ),
        )
        .unwrap();
        let mut nats = Self { dir, host: host.to_string(), port, child: None };
        nats.resume();
        nats
    }

    /// `nats://HOST:PORT`
    pub fn url(&self) -> String {
        format!("nats://{}:{}", self.host, self.port)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    /// Stops the server (SIGKILL: the link drops as in a crash or a cut cable).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, config and JetStream store.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "nats-server is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).unwrap();
        let child = Command::new(server_bin())
            .arg("-c")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let host = self.host.parse().expect("nats-server listens on an IPv4 address");
        super::wait_port_on(host, self.port, Duration::from_secs(20), "nats-server");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

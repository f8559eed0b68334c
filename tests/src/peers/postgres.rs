//! A private PostgreSQL cluster: `initdb` + `pg_ctl` into a temp directory as the
//! `postgres` system user (PostgreSQL refuses to run as root), trust authentication on
//! 127.0.0.1 only, stopped and removed on drop.
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

/// Where Debian's PostgreSQL 15 keeps its server binaries.
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The unprivileged account the Debian package creates.
const RUN_AS: &str = "postgres";

pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
}

fn pg_bin(name: &str) -> PathBuf {
    let bin = Path::new(BIN_DIR).join(name);
    assert!(
        bin.exists(),
        "{} not found: the fleet tests need PostgreSQL 15 (`cargo xtask test` installs the Debian package postgresql)",
        bin.display()
    );
    bin
}

fn as_postgres(bin: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", RUN_AS, "--"]).arg(bin);
    cmd
}

impl Postgres {
    /// A new, empty cluster under `parent/pg-<tag>`.
    pub fn start(parent: &Path, tag: &str) -> Self {
        let dir = parent.join(format!("pg-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The test's directory is root's; the cluster's must be reachable and owned by postgres.
        let mut walk = Some(dir.as_path());
        while let Some(p) = walk {
            if p == Path::new("/") || p == std::env::temp_dir() {
                break;
            }
            let mode = std::fs::metadata(p).unwrap().permissions().mode();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o711)).unwrap();
            walk = p.parent();
        }
        let status = Command::new("chown").args([RUN_AS, dir.to_str().unwrap()]).status().expect("chown");
        assert!(status.success(), "chown {} to {RUN_AS} failed (is the postgresql package installed?)", dir.display());
        let data = dir.join("data");
        let out = as_postgres(&pg_bin("initdb"))
            .args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "vtrail", "--no-sync", "-E", "UTF8", "--locale", "C"])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let port = super::free_port();
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.display());
        let out = as_postgres(&pg_bin("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-l", dir.join("server.log").to_str().unwrap(), "-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        super::wait_port(port, Duration::from_secs(30), "PostgreSQL");
        Self { dir, port }
    }

    /// `postgres://vtrail@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://vtrail@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one SQL statement with psql and returns its unaligned, tuples-only output.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new(pg_bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &self.url(), "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = as_postgres(&pg_bin("pg_ctl")).args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

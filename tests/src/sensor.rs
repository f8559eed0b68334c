//! Starts the real `vtrail-sensor` binary (as root, on the running kernel) with a private
//! database and socket, and reads back the graph it recorded through `export`.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde_json::Value;

/// Sensors see the whole machine: tests that start one run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `target/<profile>/` of the running test binary (`.../deps/<test>-<hash>`).
/// `target/<profile>`: a test runs from its `deps/` folder, a binary (vtrail-lab) from
/// the folder itself.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("the executable's folder");
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().expect("target dir").to_path_buf() } else { dir.to_path_buf() }
}

/// A workspace binary built beside the test (`target/<profile>/NAME`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let bin = bin_dir().join(name);
    assert!(bin.exists(), "{} not found: build the workspace's binaries first (`cargo xtask test` does)", bin.display());
    bin
}

pub fn sensor_bin() -> PathBuf {
    let bin = std::env::var_os("VTRAIL_SENSOR_BIN").map(PathBuf::from).unwrap_or_else(|| bin_dir().join("vtrail-sensor"));
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo xtask test` does), or set VTRAIL_SENSOR_BIN",
        bin.display()
    );
    bin
}

pub fn require_root() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests load eBPF programs: run them as root (`cargo xtask test`)");
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vtrail-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct RunningSensor {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// What the CLI is given: the same socket and database, none of the test's keys, so
    /// that it works while `config` is broken on purpose (`reload`).
    client_config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    /// Leave the pinned kernel state for the next sensor on `dir` (a restart test).
    keep_kernel_state: bool,
}

/// The bpffs directory a test sensor on `dir` pins its kernel state in (each test its
/// own, removed when its sensor is dropped unless a restart wants it).
pub fn kernel_state_dir(dir: &Path) -> PathBuf {
    Path::new("/sys/fs/bpf/vtrail-test").join(dir.file_name().expect("test dir name"))
}

impl RunningSensor {
    /// A sensor on `dir/db`, `dir/sensor.sock`, with `extra_toml` overlaid.
    pub fn start(dir: &Path, extra_toml: &str) -> Self {
        Self::start_as(dir, extra_toml, &[], &[])
    }

    /// [`Self::start`] with arguments for `run` (`--recover`).
    pub fn start_with_args(dir: &Path, extra_toml: &str, run_args: &[&str]) -> Self {
        Self::launch(dir, extra_toml, &[], &[], run_args)
    }

    /// [`Self::start`] through a launcher that execs the sensor in its own place (`setpriv
    /// ... --`: the pid stays the sensor's), with extra environment.
    pub fn start_as(dir: &Path, extra_toml: &str, launcher: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(dir, extra_toml, launcher, env, &[])
    }

    fn launch(dir: &Path, extra_toml: &str, launcher: &[&str], env: &[(&str, &str)], run_args: &[&str]) -> Self {
        require_root();
        let config = dir.join("vtrail.toml");
        write_config(dir, &config, extra_toml);
        let client_config = dir.join("client.toml");
        write_config(dir, &client_config, "");
        let log = dir.join(format!("sensor-{}.log", Instant::now().elapsed().as_nanos()));
        let mut command = match launcher {
            [first, rest @ ..] => {
                let mut c = Command::new(first);
                c.args(rest).arg(sensor_bin());
                c
            }
            [] => Command::new(sensor_bin()),
        };
        let child = command
            .arg("--config")
            .arg(&config)
            .arg("run")
            .args(run_args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn vtrail-sensor");
        let mut sensor = Self { dir: dir.into(), config, client_config, child: Some(child), log, keep_kernel_state: false };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = sensor.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vtrail-sensor exited at start-up ({status}):\n{}", sensor.log_text());
            }
            let out = sensor.cli(&["status", "--json"]);
            if out.status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "vtrail-sensor did not answer within 30 s:\n{}", sensor.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        sensor
    }

    /// Runs `f` with the sensor's userspace stopped (SIGSTOP): kernel events wait in the
    /// ring buffer, so the processes they name may be gone when it reads them, as under
    /// load. The programs keep running in the kernel.
    pub fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        let pid = self.child.as_ref().unwrap().id() as i32;
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        unsafe { libc::kill(pid, libc::SIGCONT) };
        out.unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Writes the sensor's config file again (its own paths, then `extra_toml`) and sends
    /// SIGHUP; returns the status once the reload was applied or refused.
    pub fn reload(&self, extra_toml: &str) -> Value {
        write_config(&self.dir, &self.config, extra_toml);
        let attempts = |s: &Value| s["config"]["reloads"].as_u64().unwrap_or(0) + s["config"]["failed_reloads"].as_u64().unwrap_or(0);
        let before = attempts(&self.status());
        unsafe { libc::kill(self.pid() as i32, libc::SIGHUP) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status();
            if attempts(&status) > before {
                return status;
            }
            assert!(Instant::now() < deadline, "no reload within 10 s of SIGHUP:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The configuration the CLI verbs of the tests use (the sensor's own paths only).
    pub fn client_config(&self) -> &Path {
        &self.client_config
    }

    /// The sensor's pid (a launcher execs it in its own place).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(sensor_bin()).arg("--config").arg(&self.client_config).args(args).output().expect("run vtrail-sensor")
    }

    pub fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    pub fn graph(&self) -> Graph {
        let out = self.cli(&["export", "--format", "json"]);
        assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
        Graph::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Polls the graph until `done` holds (events reach userspace asynchronously).
    pub fn wait_for(&self, what: &str, done: impl Fn(&Graph) -> bool) -> Graph {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let g = self.graph();
            if done(&g) {
                return g;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for: {what}\ngraph:\n{}\nsensor log:\n{}", g.describe(), self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and wait; returns the log.
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log_text()
    }

    /// SIGTERM and wait, leaving the pinned kernel state for the next sensor on this dir.
    pub fn stop_keeping_kernel_state(mut self) -> String {
        self.keep_kernel_state = true;
        self.stop()
    }

    /// SIGKILL (a crash: nothing cleaned up, nothing flushed) and wait; returns the log.
    pub fn kill9(mut self) -> String {
        self.keep_kernel_state = true;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.log_text()
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A test sensor's config file: its private database, socket and kernel state under
/// `dir`, then `extra_toml`.
fn write_config(dir: &Path, config: &Path, extra_toml: &str) {
    let text = format!(
        "database = \"{0}/db\"\nsocket = \"{0}/sensor.sock\"\nkernel_state = \"{1}\"\n{extra_toml}\n",
        dir.display(),
        kernel_state_dir(dir).display()
    );
    std::fs::write(config, text).unwrap();
}

impl Drop for RunningSensor {
    fn drop(&mut self) {
        self.terminate();
        if !self.keep_kernel_state {
            let _ = std::fs::remove_dir_all(kernel_state_dir(&self.dir));
        }
    }
}

pub struct Graph {
    pub header: Value,
    pub nodes: Vec<Value>,
    pub edges: Vec<Value>,
}

impl Graph {
    pub fn parse(text: &str) -> Self {
        let mut lines = text.lines();
        let header: Value = serde_json::from_str(lines.next().expect("dump header")).expect("header JSON");
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for line in lines {
            let v: Value = serde_json::from_str(line).expect("dump line JSON");
            if let Some(n) = v.get("node") {
                nodes.push(n.clone());
            } else if let Some(e) = v.get("edge") {
                edges.push(e.clone());
            }
        }
        Self { header, nodes, edges }
    }

    pub fn node(&self, id: &str) -> Option<&Value> {
        self.nodes.iter().find(|n| n["id"] == id)
    }

    /// The file node that was ever seen under `path`.
    pub fn file(&self, path: &str) -> Option<&Value> {
        self.nodes.iter().find(|n| n["kind"] == "file" && n["paths"].as_array().is_some_and(|p| p.iter().any(|x| x == path)))
    }

    pub fn is_untrusted(&self, path: &str) -> bool {
        self.file(path).is_some_and(|f| f["untrusted"] == true)
    }

    /// Processes that executed `path` (via `exec` edges).
    pub fn processes_that_exec(&self, path: &str) -> Vec<&Value> {
        let Some(file) = self.file(path) else { return Vec::new() };
        self.edges
            .iter()
            .filter(|e| e["kind"] == "exec" && e["src"] == file["id"])
            .filter_map(|e| self.node(e["dst"].as_str()?))
            .collect()
    }

    pub fn edges_into(&self, kind: &str, dst: &str) -> Vec<&Value> {
        self.edges.iter().filter(|e| e["kind"] == kind && e["dst"] == dst).collect()
    }

    pub fn edges_from(&self, kind: &str, src: &str) -> Vec<&Value> {
        self.edges.iter().filter(|e| e["kind"] == kind && e["src"] == src).collect()
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s += &format!("  node {n}\n");
        }
        for e in &self.edges {
            s += &format!("  edge {e}\n");
        }
        s
    }
}

/// Runs `sh -c script` and asserts it succeeded.
pub fn sh(script: &str) {
    let out = Command::new("/bin/sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "`{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
}

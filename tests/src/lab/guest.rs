//! One lab guest: its initramfs (busybox, the stripped vtrail binaries, vsftpd with its
//! libraries, the agent, the user and their configuration), its disk (a raw file whose
//! virtio serial names the host; the guest writes its results onto it as a tar at the
//! end), and QEMU on a tap device of the lab's bridge with a control port (`ttyS1`).
use std::{
    io::Write,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use super::scenario::{INCOMING, LAB_HOST_IP, LAN_BITS, PlannedHost, Scenario, ZONE};
use crate::qemu::{BootOptions, GuestRun, Image, KernelFiles, RunningGuest, tail};

/// Memory per guest: the kernel, the unpacked initramfs (about 80 MB) and the sensor.
pub const GUEST_MEMORY_MIB: u32 = 640;
/// The raw disk: only its serial and the results tar matter.
const DISK_BYTES: u64 = 128 << 20;
/// How long a guest's sensor may take to load its programs (TCG, guests sharing two cores).
pub const SENSOR_START_S: u32 = 420;
/// Kernel modules the guest needs: its network card and disk, and the TC classifier's.
const MODULES: &[&str] = &["virtio_pci", "virtio_net", "virtio_blk", "sch_ingress", "cls_bpf"];

/// Host-side paths and addresses a guest is configured with.
pub struct GuestInputs<'a> {
    pub sensor: &'a Path,
    pub ddns: &'a Path,
    /// `vtrail-lab-clock`, installed as `/usr/bin/now`: the scripts' ns time stamps.
    pub clock: &'a Path,
    pub ddns_key: PathBuf,
    pub fleet_key: PathBuf,
    pub dns: String,
    pub nats_url: String,
}

pub struct Guest {
    pub plan: PlannedHost,
    pub dir: PathBuf,
    pub disk: PathBuf,
    ctl: PathBuf,
    /// The one connection to the control port, kept open: a line written on a
    /// connection closed at once may never reach the guest.
    ctl_stream: std::sync::Mutex<Option<UnixStream>>,
    /// `None` once it has been waited for.
    vm: Option<RunningGuest>,
}

/// Copies `bin` without its debug sections into `dir` (a debug build is mostly DWARF,
/// which would only swell every guest's memory).
pub fn stripped(bin: &Path, dir: &Path) -> Result<PathBuf> {
    let out = dir.join(bin.file_name().context("binary without a file name")?);
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(bin)
        .status()
        .context("running strip (binutils)")?;
    ensure!(status.success(), "strip --strip-debug {} failed", bin.display());
    Ok(out)
}

pub fn tap_name(h: &PlannedHost) -> String {
    format!("vtltap{}", h.index)
}

impl Guest {
    /// Builds the guest's image and disk under `dir` and boots it on its tap device in
    /// `netns`.
    pub fn boot(
        kernel: &KernelFiles,
        scenario: &Scenario,
        plan: &PlannedHost,
        inputs: &GuestInputs,
        netns: &str,
        dir: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let initrd = dir.join("initrd.cpio");
        image(kernel, scenario, plan, inputs)?.write("/bin/sh /lab/agent.sh", &initrd)?;
        let disk = dir.join("disk.img");
        let f = std::fs::File::create(&disk)?;
        f.set_len(DISK_BYTES)?;
        drop(f);
        let ctl = dir.join("ctl.sock");
        let _ = std::fs::remove_file(&ctl);
        let mac = format!("52:54:00:77:00:{:02x}", plan.index);
        let options = BootOptions {
            name: plan.name.clone(),
            memory_mib: GUEST_MEMORY_MIB,
            smp: Some(1),
            netns: Some(netns.to_string()),
            qemu_args: [
                "-chardev".to_string(),
                format!("socket,id=ctl,path={},server=on,wait=off", ctl.display()),
                "-serial".into(),
                "chardev:ctl".into(),
                "-netdev".into(),
                format!("tap,id=lan,ifname={},script=no,downscript=no", tap_name(plan)),
                "-device".into(),
                format!("virtio-net-pci,netdev=lan,mac={mac}"),
                // The serial is the device's property (QEMU 7.2 dropped `-drive ...,serial=`).
                "-drive".into(),
                format!("file={},if=none,id=disk,format=raw", disk.display()),
                "-device".into(),
                format!("virtio-blk-pci,drive=disk,serial={}", plan.serial),
            ]
            .to_vec(),
        };
        let vm = RunningGuest::spawn(kernel, &initrd, &options)?;
        Ok(Self { plan: plan.clone(), dir: dir.to_path_buf(), disk, ctl, ctl_stream: Default::default(), vm: Some(vm) })
    }

    pub fn vm(&mut self) -> &mut RunningGuest {
        self.vm.as_mut().expect("the guest is running")
    }

    pub fn console(&self) -> String {
        self.vm.as_ref().map(RunningGuest::console).unwrap_or_default()
    }

    pub fn qemu_stderr(&self) -> String {
        self.vm.as_ref().map(RunningGuest::stderr).unwrap_or_default()
    }

    /// Waits for the guest to power off (after `stop`), keeps its console in
    /// `console.log` and unpacks the results it wrote onto its disk into `out/`.
    pub fn finish(mut self, limit: Duration) -> Result<(GuestRun, PathBuf)> {
        let vm = self.vm.take().expect("the guest is running");
        // `wait` counts from the boot: `limit` is from now.
        let limit = vm.elapsed() + limit;
        let run = vm.wait(limit);
        let console = match &run {
            Ok(r) => r.console.clone(),
            Err(e) => format!("{e:#}"),
        };
        let _ = std::fs::write(self.dir.join("console.log"), &console);
        let run = run?;
        let out = self.unpack_results(&run.console)?;
        Ok((run, out))
    }

    /// Sends one command line to the guest's agent (`ttyS1`).
    pub fn command(&self, line: &str) -> Result<()> {
        let mut held = self.ctl_stream.lock().map_err(|_| anyhow::anyhow!("{}: control port lock poisoned", self.plan.name))?;
        if held.is_none() {
            let deadline = Instant::now() + Duration::from_secs(10);
            *held = Some(loop {
                match UnixStream::connect(&self.ctl) {
                    Ok(s) => break s,
                    Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                    Err(e) => bail!("{}: cannot reach its control port {}: {e}", self.plan.name, self.ctl.display()),
                }
            });
        }
        let stream = held.as_mut().expect("connected above");
        stream
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stream.flush())
            .with_context(|| format!("{}: writing {line:?} to its control port", self.plan.name))?;
        Ok(())
    }

    /// The results the guest wrote onto its disk (a tar), unpacked into `dir/out`.
    fn unpack_results(&self, console: &str) -> Result<PathBuf> {
        let out = self.dir.join("out");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out)?;
        let result = Command::new("tar")
            .arg("-xf")
            .arg(&self.disk)
            .arg("-C")
            .arg(&out)
            .output()
            .context("running tar")?;
        ensure!(
            result.status.success() && out.join("dump.jsonl").is_file(),
            "{}: no results on its disk (tar: {}). Last console lines:\n{}",
            self.plan.name,
            String::from_utf8_lossy(&result.stderr).trim(),
            tail(console, 40)
        );
        Ok(out)
    }
}

fn image(kernel: &KernelFiles, scenario: &Scenario, h: &PlannedHost, inputs: &GuestInputs) -> Result<Image> {
    let mut image = Image::new()?;
    image.add_binary_at(inputs.sensor, "/usr/sbin/vtrail-sensor")?;
    image.add_binary_at(inputs.ddns, "/usr/sbin/vtrail-ddns")?;
    image.add_binary_at(inputs.clock, "/usr/bin/now")?;
    let vsftpd = Path::new("/usr/sbin/vsftpd");
    ensure!(vsftpd.is_file(), "/usr/sbin/vsftpd is missing: the lab's guests run it (Debian package vsftpd)");
    image.add_binary_at(vsftpd, "/usr/sbin/vsftpd")?;
    image.add_modules(kernel, MODULES)?;
    image.add_bytes(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nftp:x:100:101:ftp:/srv/ftp:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    image.add_bytes("/etc/group", "root:x:0:\nftp:x:101:\nnogroup:x:65534:\n", 0o644)?;
    image.add_dir("/srv/ftp/incoming");
    image.add_dir("/etc/cron.d");

    let env = format!(
        "HOST={}\nIP={}\nSERIAL={}\nMYID={}\nSTRATEGY={}\nDNS={}\nZONE={ZONE}\nNATS={}\n",
        h.name,
        h.ip,
        h.serial,
        h.id,
        h.strategy.name(),
        inputs.dns,
        inputs.nats_url
    );
    image.add_bytes("/lab/env", env, 0o644)?;
    let agent = include_str!("guest/agent.sh")
        .replace("@INCOMING@", INCOMING)
        .replace("@BITS@", &LAN_BITS.to_string())
        .replace("@SENSOR_START_S@", &SENSOR_START_S.to_string());
    image.add_bytes("/lab/agent.sh", agent, 0o755)?;
    image.add_bytes("/lab/user.sh", scenario.user_script(h), 0o755)?;
    image.add_bytes("/lab/sensor.toml", sensor_config(h, inputs), 0o644)?;
    image.add_bytes("/lab/vsftpd.conf", VSFTPD_CONF, 0o600)?;
    image.add_bytes("/lab/ddns.key", read(&inputs.ddns_key)?, 0o600)?;
    image.add_bytes("/lab/fleet.nk", read(&inputs.fleet_key)?, 0o600)?;
    Ok(image)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn sensor_config(h: &PlannedHost, inputs: &GuestInputs) -> String {
    format!(
        "database = \"/lab/db\"\nhook_strategy = \"{}\"\ninterfaces = [\"eth0\"]\n\
         dns_server = \"{}\"\ndns_zones = [\"{ZONE}\"]\n\
         interpreters = [\"/bin/sh\", \"/bin/busybox\", \"/usr/bin/busybox\"]\n\
         [fleet]\nnats_url = \"{}\"\ncredentials = \"/lab/fleet.nk\"\n",
        h.strategy.name(),
        inputs.dns,
        inputs.nats_url
    )
}

/// Anonymous uploads into `/srv/ftp/incoming`, as the network tests' vsftpd.
const VSFTPD_CONF: &str = "listen=YES\nbackground=NO\nanonymous_enable=YES\nlocal_enable=NO\nwrite_enable=YES\n\
anon_upload_enable=YES\nanon_root=/srv/ftp\nno_anon_password=YES\nanon_umask=022\npasv_enable=YES\n\
pasv_min_port=40000\npasv_max_port=40100\nport_enable=YES\nconnect_from_port_20=NO\nseccomp_sandbox=NO\n\
secure_chroot_dir=/var/run/vsftpd/empty\nxferlog_enable=NO\n";

/// The lab host's side as a guest reaches it.
pub fn lab_host_addr(port: u16) -> String {
    format!("{LAB_HOST_IP}:{port}")
}

impl Drop for Guest {
    /// A guest given up on (an error elsewhere) leaves its console behind for the reader.
    fn drop(&mut self) {
        if let Some(vm) = &self.vm {
            let _ = std::fs::write(self.dir.join("console.log"), vm.console());
        }
    }
}

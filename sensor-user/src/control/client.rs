//! The CLI side of the control socket.
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use anyhow::{Context, Result, bail};

use crate::control::Request;

pub fn connect(socket: &Path) -> Result<UnixStream> {
    UnixStream::connect(socket).with_context(|| {
        format!("cannot reach the sensor at {}: is `vtrail-sensor run` running (as root)?", socket.display())
    })
}

/// Sends `request` and passes every answer line to `each` until the sensor closes or
/// `each` returns false.
pub fn call(socket: &Path, request: &Request, mut each: impl FnMut(&str) -> Result<bool>) -> Result<()> {
    let mut stream = connect(socket)?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(err) = v.get("error").and_then(|e| e.as_str())
        {
            bail!("sensor: {err}");
        }
        if !each(&line)? {
            break;
        }
    }
    Ok(())
}

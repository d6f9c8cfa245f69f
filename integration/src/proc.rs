//! Child processes the harness starts: output goes to files in the artifact directory, and
//! dropping the guard stops the process (SIGTERM, then SIGKILL after a grace period), so every
//! process a scenario started is gone when the scenario ends, whatever the outcome.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running child process that is stopped on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `<log_base>.stdout` / `.stderr`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, log_base: &Path) -> anyhow::Result<Self> {
        let out = open_log(log_base, "stdout")?;
        let err = open_log(log_base, "stderr")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            // Program and arguments only: `{cmd:?}` would also print the environment, which
            // can carry an auth key.
            .with_context(|| {
                let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
                format!(
                    "starting {name}: {} {}",
                    cmd.get_program().to_string_lossy(),
                    args.join(" ")
                )
            })?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
        })
    }

    /// Whether it has exited, with its status.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops it: SIGTERM, wait up to `grace`, then SIGKILL.
    pub(crate) fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("hs-integration: {} ignored SIGTERM; killing it", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn open_log(base: &Path, ext: &str) -> anyhow::Result<File> {
    let p = base.with_extension(ext);
    File::options()
        .create(true)
        .append(true)
        .open(&p)
        .with_context(|| format!("opening log file {}", p.display()))
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

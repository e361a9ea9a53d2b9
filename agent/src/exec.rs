//! `agent exec -- PROGRAM [ARGS…]`: runs in an app container whose ENV_VAR secrets could not
//! be wired with a `secretKeyRef` (AWS, Vault, Flyte 2 managed secrets). It reads each such
//! secret from the file the init container wrote, sets the env vars the naming rules give
//! (flytekit's `_FSEC_<GROUP>_<KEY>`, `env_var`, …), and replaces itself with the program via
//! `execve`: same pid, so signals and the exit code are the program's own. Values are never
//! put on argv, and a missing secret stops here, before the program starts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use flyte_secret_spec::plan::FetchPlan;

use crate::error::Error;

/// The env vars to set: (name, value) for every ENV_VAR secret of the plan.
pub fn secret_env(plan: &FetchPlan, root: &Path) -> Result<Vec<(String, OsString)>, Error> {
    let mut vars = Vec::new();
    for secret in plan.env_secrets() {
        let path = root.join(secret.files[0].as_str());
        let bytes = std::fs::read(&path).map_err(|source| Error::NotDelivered {
            secret: secret.request.name().to_string(),
            path: path.clone(),
            source,
        })?;
        if bytes.contains(&0) {
            return Err(Error::NulInEnv(secret.request.name().to_string()));
        }
        for name in &secret.env {
            vars.push((name.clone(), OsString::from_vec(bytes.clone())));
        }
    }
    Ok(vars)
}

/// Sets the secrets' env vars and execs `program`. Returns only on failure.
pub fn exec(plan: &FetchPlan, root: Option<PathBuf>, program: &[OsString]) -> Error {
    let Some((bin, args)) = program.split_first() else {
        return Error::NoProgram;
    };
    let root = root.unwrap_or_else(|| PathBuf::from(&plan.mount_path));
    let vars = match secret_env(plan, &root) {
        Ok(v) => v,
        Err(e) => return e,
    };
    tracing::debug!(program = ?bin, variables = vars.len(), "exec");
    let error = Command::new(bin).args(args).envs(vars).exec();
    Error::Exec {
        program: PathBuf::from(bin),
        source: error,
    }
}

//! The implementation under test as the command line gives it (`-- CMD [ARG...]`), checked
//! before any case runs, so a typo is a usage error (exit 2), never a failed run.

use std::path::Path;

use crate::process::Target;

/// Why `-- CMD [ARG...]` does not name something the gate can run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing after `--`.
    #[error("needs the command to test after `--`, for example: udsping conform server -- ./my-server {{socket}}")]
    Missing,
    /// CMD is neither an executable file nor found on `PATH`.
    #[error("cannot run the target: {program:?} is not an executable file (nor found on PATH)")]
    NotExecutable {
        /// CMD as given.
        program: String,
    },
}

/// The target for `command` (CMD and its ARGs). CMD is made absolute when it names an
/// existing file relative to the current directory, because the target runs in another
/// directory; ARGs are the implementation's business and are passed as written (`{socket}`
/// in them is left for the harness to replace).
pub fn from_command(command: &[String]) -> Result<Target, TargetError> {
    let (program, args) = command.split_first().ok_or(TargetError::Missing)?;
    let target = Target { program: absolute_if_file(program), args: args.to_vec() };
    check(&target)?;
    Ok(target)
}

/// Checks that the target's program can be started.
pub fn check(target: &Target) -> Result<(), TargetError> {
    target.check().map_err(|_| TargetError::NotExecutable { program: target.program.clone() })
}

fn absolute_if_file(arg: &str) -> String {
    let path = Path::new(arg);
    if path.is_relative() && arg != "{socket}" && path.exists() {
        if let Ok(absolute) = std::path::absolute(path) {
            return absolute.to_string_lossy().into_owned();
        }
    }
    arg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_unrunnable_command_is_refused() {
        assert_eq!(from_command(&[]).unwrap_err(), TargetError::Missing);
        let error = from_command(&["/no/such/cmd".into()]).unwrap_err();
        assert_eq!(error, TargetError::NotExecutable { program: "/no/such/cmd".into() });
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "").unwrap();
        assert!(from_command(&[plain.to_string_lossy().into_owned()]).is_err());
    }

    #[test]
    fn only_the_program_is_made_absolute() {
        let target = from_command(&["sh".into(), "Cargo.toml".into(), "{socket}".into()]).unwrap();
        assert_eq!(target.program, "sh");
        assert_eq!(target.args, ["Cargo.toml", "{socket}"], "arguments are passed as written");
        // A script named relative to the current directory (the package root here).
        let dir = tempfile::Builder::new().prefix(".target-test-").tempdir_in(".").unwrap();
        let script = dir.path().join("server.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let relative = Path::new(dir.path().file_name().unwrap()).join("server.sh");
        let target = from_command(&[relative.to_string_lossy().into_owned()]).unwrap();
        assert!(Path::new(&target.program).is_absolute(), "{target:?}");
        assert_eq!(Path::new(&target.program), std::path::absolute(&relative).unwrap());
    }
}

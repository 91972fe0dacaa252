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

/// An argument of CMD that names a file or directory relative to the current directory. CMD
/// runs in a fresh directory (for each case of the gate, for each server the bench starts),
/// where the same relative path names nothing, so `-- python3 server.py` would fail every
/// case. Arguments are passed as written (a name there may be meant for that directory, such
/// as a socket path), so this is a warning with the fix, not a rewrite.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "CMD's argument {argument:?} names a file or directory here, but CMD runs in a fresh directory where it does not exist; to pass this one, give {absolute:?}"
)]
pub struct RelativeArgument {
    /// The argument as given.
    pub argument: String,
    /// The same file as an absolute path.
    pub absolute: String,
}

/// The arguments of `target` that name an existing regular file or directory relative to the
/// current directory (sockets and `{socket}` excepted: those are addresses, not inputs).
pub fn relative_arguments(target: &Target) -> Vec<RelativeArgument> {
    target
        .args
        .iter()
        .filter(|arg| !arg.contains("{socket}") && !arg.starts_with('-') && Path::new(arg.as_str()).is_relative())
        .filter(|arg| std::fs::metadata(arg.as_str()).is_ok_and(|m| m.is_file() || m.is_dir()))
        .filter_map(|arg| {
            let absolute = std::path::absolute(arg.as_str()).ok()?;
            Some(RelativeArgument { argument: arg.clone(), absolute: absolute.to_string_lossy().into_owned() })
        })
        .collect()
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
    fn a_relative_file_argument_is_named_with_its_absolute_path() {
        // The package root is the current directory of unit tests.
        let target = from_command(&["sh".into(), "Cargo.toml".into(), "{socket}".into(), "-x".into()]).unwrap();
        let found = relative_arguments(&target);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].argument, "Cargo.toml");
        assert_eq!(Path::new(&found[0].absolute), std::path::absolute("Cargo.toml").unwrap());
        assert!(found[0].to_string().contains("runs in a fresh directory"));
        let none = from_command(&["sh".into(), "no-such-file".into(), "/etc/hostname".into()]).unwrap();
        assert!(relative_arguments(&none).is_empty());
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

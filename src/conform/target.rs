//! The implementation under test as the command line gives it (`-- CMD [ARG...]`), checked
//! before any case runs, so a typo is a usage error (exit 2), never a failed run.

use std::path::Path;

use super::harness::Target;

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

/// The target for `command` (CMD and its ARGs), with every ARG that names an existing file
/// relative to the current directory made absolute, because the target runs in another
/// directory; `{socket}` is left for the harness to replace.
pub fn from_command(command: &[String]) -> Result<Target, TargetError> {
    let (program, args) = command.split_first().ok_or(TargetError::Missing)?;
    let target =
        Target { program: absolute_if_file(program), args: args.iter().map(|a| absolute_if_file(a)).collect() };
    check(&target)?;
    Ok(target)
}

/// Checks that the target's program can be started.
pub fn check(target: &Target) -> Result<(), TargetError> {
    let runnable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if target.program.contains('/') {
        runnable(Path::new(&target.program))
    } else {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| runnable(&dir.join(&target.program))))
    };
    if found {
        Ok(())
    } else {
        Err(TargetError::NotExecutable { program: target.program.clone() })
    }
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
    fn programs_on_path_and_existing_files_resolve() {
        let target = from_command(&["sh".into(), "Cargo.toml".into(), "{socket}".into()]).unwrap();
        assert_eq!(target.program, "sh");
        assert!(Path::new(&target.args[0]).is_absolute(), "{target:?}");
        assert_eq!(target.args[1], "{socket}");
    }
}
